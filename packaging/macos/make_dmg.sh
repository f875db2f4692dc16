#!/usr/bin/env bash
# macOS: wrap the .app PyInstaller built into a compressed .dmg with an Applications link.
#   bash packaging/macos/make_dmg.sh "dist/RL Studio.app" dist/RLStudio-0.2.0-macos-arm64.dmg
# Unsigned: Gatekeeper asks the first time (right-click > Open). To sign and notarise, set
# CODESIGN_ID (a "Developer ID Application" identity) and NOTARY_PROFILE (a stored
# `xcrun notarytool store-credentials` profile) before running it.
set -euo pipefail
app="$1"; out="$2"
[ -d "$app" ] || { echo "no app bundle at $app: run pyinstaller packaging/rlstudio.spec first" >&2; exit 2; }
if [ -n "${CODESIGN_ID:-}" ]; then
    codesign --force --deep --options runtime --timestamp --sign "$CODESIGN_ID" "$app"
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$app" "$stage/"
ln -s /Applications "$stage/Applications"
rm -f "$out"
hdiutil create -volname "RL Studio" -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$out"
if [ -n "${CODESIGN_ID:-}" ] && [ -n "${NOTARY_PROFILE:-}" ]; then
    codesign --sign "$CODESIGN_ID" --timestamp "$out"
    xcrun notarytool submit "$out" --keychain-profile "$NOTARY_PROFILE" --wait
    xcrun stapler staple "$out"
fi
echo "$out"
