"""seg sagemaker-job / local-job / job-manifest: thin click layers for the pipeline (see the Makefile)."""
import json
from pathlib import Path

import click


def _hp_file(path):
    """Hyperparameters JSON object (SageMaker's hyperparameters.json shape); {} without a file."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{path}: not a readable JSON hyperparameters file ({exc})") from None
    if not isinstance(data, dict):
        raise click.ClickException(f'{path}: expected a JSON object like {{"epochs": "10", "crop_size": "240"}}')
    return data


def _job_errors():
    from gt2seg.errors import Gt2SegError
    from seg.errors import JobError

    return JobError, Gt2SegError, OSError


_MODE = click.option("--mode", type=click.Choice(["File", "Pipe"]), default="File", show_default=True,
                     help="File: S3Prefix channels. Pipe: the augmented-manifest channels of channels.json.")
_HP = click.option("--hp-file", type=click.Path(exists=True, dir_okay=False),
                   help="Hyperparameters JSON; num_classes and num_training_samples are filled in from the layout.")


@click.command("sagemaker-job")
@click.argument("layout")
@_HP
@_MODE
@click.option("--image", type=click.Choice(["builtin", "container"]), default="builtin", show_default=True,
              help="builtin: SageMaker's semantic-segmentation algorithm. container: this package's image.")
@click.option("--image-uri", help="Training image (required for container; overrides the built-in's per-region URI).")
@click.option("--s3-prefix", help="Where LAYOUT (a local folder) was uploaded; default: LAYOUT when it is s3://.")
@click.option("--region", help="AWS region (default: the AWS configuration's).")
@click.option("--role", "role_arn", envvar="SAGEMAKER_ROLE_ARN", help="Execution role ARN ($SAGEMAKER_ROLE_ARN).")
@click.option("--job-name", help="Default: seg-<UTC date>-<time>.")
@click.option("--output-path", help="S3 prefix for model.tar.gz (default: <s3-prefix>-jobs/).")
@click.option("--instance-type", default="ml.p3.2xlarge", show_default=True)
@click.option("--model", "model_uri", help="Incremental training: s3:// URI of a model.tar.gz written by seg or the "
              "built-in (same backbone, algorithm, crop_size and num_classes).")
@click.option("--dry-run", is_flag=True, help="Print the CreateTrainingJob request as JSON; send nothing.")
def sagemaker_job(layout, hp_file, mode, image, image_uri, s3_prefix, region, role_arn, job_name, output_path,
                  instance_type, model_uri, dry_run):
    """Create a SageMaker training job for LAYOUT (gt2seg's output, local folder or s3:// prefix)."""
    from seg.jobs import sagemaker as sj

    try:
        options = sj.JobOptions(mode, image, image_uri, region or sj.default_region(), role_arn, job_name,
                                output_path, instance_type, model_uri)
        request = sj.build_request(sj.read_layout(layout, s3_prefix), _hp_file(hp_file), options)
        sj.require_s3(request)
        if dry_run:
            click.echo(json.dumps(request, indent=2))
            return
        click.echo(sj.create_training_job(request))
    except _job_errors() as exc:
        raise click.ClickException(str(exc)) from None


@click.command("local-job")
@click.argument("layout")
@click.argument("model_dir", type=click.Path(file_okay=False))
@_HP
@_MODE
@click.option("--root", required=True, type=click.Path(file_okay=False),
              help="Work folder standing in for /opt/ml (checkpoints here make a File-mode rerun resume).")
def local_job(layout, model_dir, hp_file, mode, root):
    """Train on this machine exactly the job `seg sagemaker-job --image container` would create for LAYOUT."""
    from seg.errors import LocalJobError
    from seg.jobs import sagemaker as sj
    from seg.jobs.local import run_local_job

    try:
        options = sj.JobOptions(mode, "container", image_uri="local", job_name="local")
        request = sj.build_request(sj.read_layout(layout), _hp_file(hp_file), options)
        result = run_local_job(request, root, model_dir)
    except (*_job_errors(), LocalJobError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"model_dir": str(result.model_dir), "mode": result.mode, "epochs_run": result.epochs_run,
                           "best_epoch": result.best_epoch, "validation:mIOU": result.best_miou}))


@click.command("job-manifest")
@click.argument("job")
@click.argument("dest", type=click.Path(dir_okay=False))
def job_manifest(job, dest):
    """Copy JOB's output manifest to DEST, touching DEST only when the manifest changed (for make)."""
    from gt2seg.errors import Gt2SegError
    from seg.errors import JobManifestError
    from seg.jobs.snapshot import snapshot_manifest

    try:
        snap = snapshot_manifest(job, dest)
    except (JobManifestError, Gt2SegError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{snap.manifest}: {snap.lines} lines, {'changed' if snap.changed else 'unchanged'}", err=True)


