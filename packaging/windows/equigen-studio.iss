; Inno Setup script of the Windows installer (cannot be built on Linux). On Windows: run the
; steps of packaging/build.sh with PyInstaller there (dist\equigen-studio\), then
;   iscc packaging\windows\equigen-studio.iss
; Per-user install (no administrator), a Start menu entry, and "Open with" entries for the
; studio's files: .safetensors INRs and models, and the image and mesh formats it reads.
#define AppName "EquiGen Studio"
#define AppVersion "0.1.0"
#define Exe "equigen-studio.exe"

[Setup]
AppId={{5B0E6C1A-7E0F-4F4B-9C57-3C2A7E2B9A10}
AppName={#AppName}
AppVersion={#AppVersion}
DefaultDirName={localappdata}\Programs\EquiGen Studio
DefaultGroupName={#AppName}
PrivilegesRequired=lowest
OutputBaseFilename=EquiGenStudio-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\equigen-studio.ico
Compression=lzma2/max
SolidCompression=yes
ChangesAssociations=yes
ArchitecturesInstallIn64BitMode=x64compatible

[Files]
Source: "..\..\dist\equigen-studio\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#Exe}"
Name: "{userdesktop}\{#AppName}"; Filename: "{app}\{#Exe}"; Tasks: desktopicon

[Tasks]
Name: desktopicon; Description: "Create a desktop icon"; Flags: unchecked

[Registry]
; the studio's ProgID, offered in "Open with" for its own files without taking .safetensors over
Root: HKCU; Subkey: "Software\Classes\EquiGenStudio.File"; ValueType: string; ValueData: "EquiGen INR or model"; Flags: uninsdeletekey
Root: HKCU; Subkey: "Software\Classes\EquiGenStudio.File\DefaultIcon"; ValueType: string; ValueData: "{app}\{#Exe},0"
Root: HKCU; Subkey: "Software\Classes\EquiGenStudio.File\shell\open\command"; ValueType: string; ValueData: """{app}\{#Exe}"" ""%1"""
Root: HKCU; Subkey: "Software\Classes\.safetensors\OpenWithProgids"; ValueType: string; ValueName: "EquiGenStudio.File"; ValueData: ""; Flags: uninsdeletevalue
Root: HKCU; Subkey: "Software\Classes\.obj\OpenWithProgids"; ValueType: string; ValueName: "EquiGenStudio.File"; ValueData: ""; Flags: uninsdeletevalue
Root: HKCU; Subkey: "Software\Classes\.ply\OpenWithProgids"; ValueType: string; ValueName: "EquiGenStudio.File"; ValueData: ""; Flags: uninsdeletevalue
Root: HKCU; Subkey: "Software\Classes\.stl\OpenWithProgids"; ValueType: string; ValueName: "EquiGenStudio.File"; ValueData: ""; Flags: uninsdeletevalue
Root: HKCU; Subkey: "Software\Classes\.glb\OpenWithProgids"; ValueType: string; ValueName: "EquiGenStudio.File"; ValueData: ""; Flags: uninsdeletevalue
Root: HKCU; Subkey: "Software\Classes\.png\OpenWithProgids"; ValueType: string; ValueName: "EquiGenStudio.File"; ValueData: ""; Flags: uninsdeletevalue
Root: HKCU; Subkey: "Software\Classes\Applications\{#Exe}\SupportedTypes"; ValueType: string; ValueName: ".safetensors"; ValueData: ""

[Run]
Filename: "{app}\{#Exe}"; Description: "Start {#AppName}"; Flags: nowait postinstall skipifsilent
