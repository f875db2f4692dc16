#!/usr/bin/env sh
# Installs RL Studio for this user: the app folder under ~/.local/lib, a `rlstudio` command in
# ~/.local/bin, and the menu entry and icon. Run it from the unpacked folder; run it again
# after unpacking a newer version (your runs and settings live elsewhere and are kept).
# `./install.sh --uninstall` removes what it put there.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
id=io.rlstudio.RLStudio
lib="$HOME/.local/lib/rlstudio"
bin="$HOME/.local/bin"
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/256x256/apps"

if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$lib" "$bin/rlstudio" "$apps/$id.desktop" "$icons/$id.png"
    echo "RL Studio removed (runs and settings are kept in ~/.local/share/rlstudio)."
    exit 0
fi

mkdir -p "$lib" "$bin" "$apps" "$icons"
rm -rf "$lib/app.new"
cp -a "$here/rlstudio" "$lib/app.new"
rm -rf "$lib/app" && mv "$lib/app.new" "$lib/app"   # the old version stays until the new is in
ln -sf "$lib/app/rlstudio" "$bin/rlstudio"
cp "$here/rlstudio.png" "$icons/$id.png"
sed "s|^Exec=rlstudio|Exec=$lib/app/rlstudio|" "$here/$id.desktop" > "$apps/$id.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$apps" || true
echo "RL Studio installed: open it from the applications menu, or run $bin/rlstudio"
