"""The reference device agent (`python -m portal.agent --url ... --device-secret ...`).

Standard library only, so it runs on a device with nothing but Python. It sends heartbeats,
long-polls for tasks and runs the harmless ones: diagnostics (platform facts), and reboot and
firmware update simulated (reported as such). Custom commands are refused (exit code 127).
"""
