"""seg invoke: send one image to a running endpoint."""
from __future__ import annotations

import json

import click


@click.command()
@click.argument("url")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the mask and overlay PNGs.")
@click.option("--wait", default=0.0, show_default=True, help="Seconds to wait for /ping to answer 200 first.")
def invoke(url, image, out, wait):
    """POST IMAGE to URL/invocations; write <stem>_mask.png and <stem>_overlay.png; print them as JSON."""
    from seg.serve.client import invoke as send
    from seg.serve.client import wait_ready

    if wait:
        wait_ready(url, wait)
    click.echo(json.dumps(send(url, image, out).to_json(), indent=2))
