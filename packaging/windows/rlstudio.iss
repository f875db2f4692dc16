; Inno Setup 6 script for RL Studio on Windows. packaging/build.py runs it after PyInstaller:
;   iscc /DAppVersion=0.2.0 /DAppName="RL Studio" ... packaging\windows\rlstudio.iss
; (the defines come from assets/app/metadata.toml and core/__init__.py).
; Per-user install by default (no admin rights needed); the data folder is not touched on
; uninstall or upgrade, so runs survive both.

#ifndef AppName
  #error Run through packaging/build.py (it passes the defines)
#endif

[Setup]
AppId={{{#AppGuid}}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher={#AppPublisher}
AppPublisherURL={#AppURL}
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
OutputDir={#Root}\dist
OutputBaseFilename=RLStudio-{#AppVersion}-windows-setup
SetupIconFile={#Root}\assets\app\rlstudio.ico
UninstallDisplayIcon={app}\{#AppExe}.exe
Compression=lzma2/max
SolidCompression=yes
; torch's DLLs are large: a 64-bit-only installer
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[Files]
; the whole one-folder bundle PyInstaller wrote
Source: "{#Root}\dist\{#AppExe}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[InstallDelete]
; an upgrade must not leave the previous version's libraries beside the new ones
Type: filesandordirs; Name: "{app}\_internal"

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}.exe"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\{#AppExe}.exe"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent
