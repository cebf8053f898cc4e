"""seg train / predict / evaluate (owned by the training work, issue 3)."""
import click


@click.command()
def train():
    """Train a model (not built yet)."""
    raise click.ClickException("seg train is not built yet")


@click.command()
def predict():
    """Predict masks (not built yet)."""
    raise click.ClickException("seg predict is not built yet")


@click.command()
def evaluate():
    """Evaluate a model (not built yet)."""
    raise click.ClickException("seg evaluate is not built yet")
