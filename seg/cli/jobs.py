"""seg sagemaker-job / local-job / job-manifest: thin click layers for the pipeline (see the Makefile)."""
import json

import click

from seg.cli.options import hp_file_option

_MODE = click.option("--mode", type=click.Choice(["File", "Pipe"]), default="File", show_default=True,
                     help="File: S3Prefix channels. Pipe: the augmented-manifest channels of channels.json.")
_HP = hp_file_option("Hyperparameters JSON; num_classes and num_training_samples are filled in from the layout.")


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
def sagemaker_job(layout, hyperparameters, mode, image, image_uri, s3_prefix, region, role_arn, job_name, output_path,
                  instance_type, model_uri, dry_run):
    """Create a SageMaker training job for LAYOUT (gt2seg's output, local folder or s3:// prefix)."""
    from seg.jobs import sagemaker as sj

    options = sj.JobOptions(mode, image, image_uri, region or sj.default_region(), role_arn, job_name, output_path,
                            instance_type, model_uri)
    request = sj.build_request(sj.read_layout(layout, s3_prefix), hyperparameters, options)
    sj.require_s3(request)
    click.echo(json.dumps(request, indent=2) if dry_run else sj.create_training_job(request))


@click.command("local-job")
@click.argument("layout")
@click.argument("model_dir", type=click.Path(file_okay=False))
@_HP
@_MODE
@click.option("--root", required=True, type=click.Path(file_okay=False),
              help="Work folder standing in for /opt/ml (checkpoints here make a File-mode rerun resume).")
def local_job(layout, model_dir, hyperparameters, mode, root):
    """Train on this machine exactly the job `seg sagemaker-job --image container` would create for LAYOUT."""
    from seg.jobs import sagemaker as sj
    from seg.jobs.local import run_local_job

    options = sj.JobOptions(mode, "container", image_uri="local", job_name="local")
    result = run_local_job(sj.build_request(sj.read_layout(layout), hyperparameters, options), root, model_dir)
    click.echo(json.dumps({"model_dir": str(result.model_dir), "mode": result.mode, "epochs_run": result.epochs_run,
                           "best_epoch": result.best_epoch, "validation:mIOU": result.best_miou}))


@click.command("job-manifest")
@click.argument("job")
@click.argument("dest", type=click.Path(dir_okay=False))
def job_manifest(job, dest):
    """Copy JOB's output manifest to DEST, touching DEST only when the manifest changed (for make)."""
    from seg.jobs.snapshot import snapshot_manifest

    snap = snapshot_manifest(job, dest)
    click.echo(f"{snap.manifest}: {snap.lines} lines, {'changed' if snap.changed else 'unchanged'}", err=True)
