"""What the benchmark scripts share: where the repository is, the JWT secret their servers run
with, psql, percentiles and tokens minted by the binary under test."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-secret-bench-secret-bench-secret-0123"


def psql(url, sql, *extra):
    """Runs one SQL text with psql, stopping at the first error; its output."""
    return subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", *extra, "-c", sql],
                          check=True, capture_output=True, text=True).stdout


def percentile(values, p):
    """The p-th percentile (nearest rank) of the values; NaN for none."""
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def dev_token(binary, env, role, school=None):
    """A platform token for `role` (and school), minted by `gradsign dev-token` of the binary."""
    cmd = [binary, "dev-token", "--role", role, "--sub", "bench", "--name", "压测"]
    if school:
        cmd += ["--school", school]
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
