// The systemd unit, as text from settings: `appliance install-service` writes it with this
// install's absolute paths; systemd/appliance.service in the repository is the same text for an
// install in /opt/appliance (a test keeps the two the same).

export interface UnitSettings {
  /** The pinned Node 24 (node_modules/node/bin/node), absolute. */
  node: string;
  /** The appliance's entry (dist/appliance.js), absolute. */
  entry: string;
  config: string;
  user: string;
  /** Secrets: APPLIANCE_PUSH_TOKEN and the like; optional (the leading "-"). */
  environmentFile: string;
}

export const DEFAULT_UNIT: UnitSettings = {
  node: '/opt/appliance/node_modules/node/bin/node',
  entry: '/opt/appliance/dist/appliance.js',
  config: '/etc/appliance/appliance.yaml',
  user: 'appliance',
  environmentFile: '/etc/appliance/secrets.env',
};

/** systemd quoting for one ExecStart word. */
const word = (value: string) => (/^[\w@%+=,./:-]+$/.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1')}"`);

/** Pure: the unit file's text. */
export function renderUnit(settings: UnitSettings): string {
  return `# appliance: live LL-DASH / LL-HLS contribution encoder (written by "appliance install-service")
[Unit]
Description=appliance live contribution encoder
Documentation=https://github.com/appliance/appliance#run-it-as-a-service
Wants=network-online.target
After=network-online.target sound.target time-sync.target
# Restarted however often it fails at run time (a camera unplugged all night).
StartLimitIntervalSec=0

[Service]
# READY=1 once the first init segment reached an output; WATCHDOG=1 while chunks flow.
Type=notify
# Node cannot send the notify datagram itself: systemd-notify, a child, sends it.
NotifyAccess=all
ExecStart=${[settings.node, '--max-semi-space-size=2', settings.entry, 'start', '--config', settings.config].map(word).join(' ')}
Environment=MALLOC_ARENA_MAX=2
EnvironmentFile=-${settings.environmentFile}
User=${settings.user}
Group=${settings.user}
SupplementaryGroups=video audio
ConfigurationDirectory=appliance
ConfigurationDirectoryMode=0750
StateDirectory=appliance
WorkingDirectory=/var/lib/appliance
# A run that fails is started again; bad configuration (exit 2) is not: it would only fail again.
Restart=always
RestartSec=2
RestartPreventExitStatus=2
# The first init segment comes within a few seconds; a slow device or origin may take longer.
TimeoutStartSec=90
WatchdogSec=15
# SIGTERM to the appliance, which finishes the current segment and stops ffmpeg itself; anything
# left after TimeoutStopSec is killed.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=20
# Memory for the whole service: Node ~120 MB beside its media budget (start --memory; by default
# ~42 MB serving ultra-ll, ~35 MB pushing it), ffmpeg ~160 MB for ultra-ll's ladder (more with a
# camera's MJPEG decode), a slate encoder at times. Above MemoryHigh the kernel reclaims and
# throttles; at MemoryMax it kills, and the service restarts. The appliance warns at start when
# these are below what its run needs: after raising --memory, --tsb or the ladder, raise both
# ("systemctl edit appliance").
MemoryHigh=640M
MemoryMax=768M
# Hardening: a read-only system, no home, private /tmp, cameras and sound cards only.
# (Not MemoryDenyWriteExecute: V8 compiles to executable memory.)
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# /proc shows this service only its own user's processes (systemd ≥ 247). No secret is in any of
# its command lines or its children's environments in the first place (they come from secrets.env).
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
CapabilityBoundingSet=
DevicePolicy=closed
DeviceAllow=char-video4linux rw
DeviceAllow=char-alsa rw
DeviceAllow=/dev/snd rw
SystemCallArchitectures=native
UMask=0027

[Install]
WantedBy=multi-user.target
`;
}
