from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import urllib.error
import urllib.request

VERSION = "1.0.0"


class Agent:
    def __init__(self, url: str, secret: str, *, firmware: str = VERSION, timeout: float = 35.0):
        self.base = url.rstrip("/") + "/api/v1/agent"
        self.secret, self.firmware, self.timeout = secret, firmware, timeout

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.secret}", "Content-Type": "application/json",
            "Accept": "application/json", "User-Agent": f"portal-agent/{VERSION}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else None
            except ValueError:
                return exc.code, {"detail": raw[:200].decode(errors="replace")}

    def heartbeat(self, status: str = "online") -> dict | None:
        code, body = self.call("POST", "/heartbeat", {
            "status": status, "firmware": self.firmware,
            "metrics": {"load": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
                        "uptime_s": int(time.monotonic())}})
        if code != 200:
            raise RuntimeError(f"heartbeat refused: {code} {body}")
        return body

    def next_task(self, wait: float) -> dict | None:
        code, body = self.call("GET", f"/tasks?wait={wait:g}")
        if code == 204:
            return None
        if code != 200:
            raise RuntimeError(f"task poll refused: {code} {body}")
        return body

    def run(self, task: dict) -> dict:
        command, parameters = task["command"], task.get("parameters") or {}
        if command == "collect_diagnostics":
            output = {"platform": platform.platform(), "python": platform.python_version(),
                      "machine": platform.machine(), "node": platform.node(), "cpus": os.cpu_count(),
                      "agent": VERSION, "firmware": self.firmware}
            return {"status": "succeeded", "exit_code": 0, "output": output,
                    "log": "collected platform information\n"}
        if command == "reboot":
            return {"status": "succeeded", "exit_code": 0, "output": {"simulated": True},
                    "log": "reboot simulated: the reference agent does not restart the machine\n"}
        if command == "update_firmware":
            version = str(parameters.get("version") or "")
            if not version:
                return {"status": "failed", "exit_code": 2, "output": {"simulated": True},
                        "log": "no firmware version given\n"}
            previous, self.firmware = self.firmware, version
            return {"status": "succeeded", "exit_code": 0,
                    "output": {"simulated": True, "from": previous, "to": version},
                    "log": f"firmware update simulated: {previous} -> {version}\n"}
        return {"status": "failed", "exit_code": 127, "output": {"supported": False},
                "log": f"the reference agent does not run {command!r} commands\n"}

    def work(self, wait: float) -> int:
        """Claim and run tasks until none comes within `wait` seconds; returns how many ran."""
        done = 0
        while True:
            task = self.next_task(wait)
            if task is None:
                return done
            result = self.run(task)
            code, _ = self.call("POST", f"/tasks/{task['id']}/result", result)
            print(f"task {task['id']} {task['command']}: {result['status']} (server {code})", flush=True)
            done += 1
            if task["command"] == "update_firmware":
                self.heartbeat()  # report the new firmware at once


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portal.agent", description=__doc__)
    parser.add_argument("--url", required=True, help="the portal's base URL, e.g. https://portal.example.com")
    parser.add_argument("--device-secret", default=os.environ.get("PORTAL_AGENT_SECRET"),
                        help="the device's agent secret (or PORTAL_AGENT_SECRET)")
    parser.add_argument("--firmware", default=VERSION, help="the firmware version to report")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between heartbeats")
    parser.add_argument("--wait", type=float, default=25.0, help="seconds a task poll waits (0-25)")
    parser.add_argument("--once", action="store_true", help="one heartbeat, the waiting tasks, then exit")
    args = parser.parse_args(argv)
    if not args.device_secret:
        parser.error("--device-secret (or PORTAL_AGENT_SECRET) is required")
    agent = Agent(args.url, args.device_secret, firmware=args.firmware)
    while True:
        try:
            agent.heartbeat()
            started = time.monotonic()
            agent.work(args.wait if not args.once else min(args.wait, 1.0))
        except (RuntimeError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            if args.once:
                return 1
            time.sleep(5)
            continue
        if args.once:
            return 0
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))


if __name__ == "__main__":
    sys.exit(main())
