"""seg invoke: send one image to a running endpoint."""
from __future__ import annotations

import json

import click


@click.command()
@click.argument("url")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the mask and overlay PNGs.")
@click.option("--wait", default=0.0, show_default=True, help="Seconds to wait for /ping to answer 200 first.")
@click.option("--server-pid", type=click.IntRange(1), help="With --wait: the `seg serve` process that will answer; "
              "stop waiting the moment it exits.")
@click.option("--server-log", type=click.Path(dir_okay=False), help="With --server-pid: the server's log (its "
              "stderr), whose last error line says why it exited.")
def invoke(url, image, out, wait, server_pid, server_log):
    """POST IMAGE to URL/invocations; write <stem>_mask.png and <stem>_overlay.png; print them as JSON."""
    from seg.serve.client import invoke as send
    from seg.serve.client import wait_ready

    if (server_pid or server_log) and not wait:
        raise click.UsageError("--server-pid and --server-log go with --wait SECONDS")
    if server_log and not server_pid:
        raise click.UsageError("--server-log goes with --server-pid PID (the process whose log it is)")
    if wait:
        server = f" (seg serve, pid {server_pid}{f', log {server_log}' if server_log else ''})" if server_pid else ""
        click.echo(f"waiting up to {wait:g} s for {url.rstrip('/')}/ping to answer 200{server}", err=True)
        wait_ready(url, wait, server_pid, server_log)
    click.echo(json.dumps(send(url, image, out).to_json(), indent=2))
