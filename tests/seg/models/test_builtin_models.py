"""Models crossing between seg and SageMaker's built-in algorithm (GluonCV FCN / PSPNet / DeepLabV3, ResNet-50)."""
import io
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from builtin_models import (  # noqa: E402
    builtin_hyperparameters,
    demo_mask,
    gluoncv_net,
    random_rgb,
    write_builtin_model,
)
from seg.config import parse_hyperparameters  # noqa: E402
from seg.data.transforms import normalize  # noqa: E402
from seg.errors import ModelError  # noqa: E402
from seg.engines.mxnet.engine import weights_of  # noqa: E402
from seg.models.artifact import check_compatible, open_model, read_model, write_artifact  # noqa: E402
from seg.models.params import write_params  # noqa: E402
from seg.models.arch import parameter_shapes as expected_shapes  # noqa: E402
from seg.models.builtin import detect_architecture  # noqa: E402
from seg.models.export import export_model  # noqa: E402
from seg.engines.mxnet.nets import Architecture, build_network  # noqa: E402
from seg.serve.predictor import Predictor  # noqa: E402

pytestmark = pytest.mark.mxnet
SIZES = ((40, 56), (64, 64))


def _shapes(net):
    return {name: tuple(p.shape) for name, p in net._collect_params_with_prefix().items()}


@pytest.fixture(scope="module")
def builtin(module_tmp):
    """algorithm → (GluonCV net, built-in model.tar.gz with hyperparams.json)."""
    made = {}
    for algorithm in ("fcn", "psp", "deeplab"):
        net = gluoncv_net(algorithm)
        made[algorithm] = net, write_builtin_model(module_tmp(algorithm), net,
                                                   builtin_hyperparameters(algorithm))
    return made


@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_resnet50_networks_carry_gluoncvs_parameter_names_and_shapes(builtin, algorithm):
    hp = parse_hyperparameters({"num_classes": 4, "num_training_samples": 1, "algorithm": algorithm,
                                "use_pretrained_model": False})
    assert _shapes(build_network(hp)) == _shapes(builtin[algorithm][0])


@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_resnet101_networks_carry_gluoncvs_parameter_names_and_shapes(algorithm):
    from builtin_models import GLUONCV

    gluon = GLUONCV[algorithm](3, backbone="resnet101", aux=True, pretrained_base=False, crop_size=32)
    gluon.initialize()
    gluon(mx.nd.zeros((1, 3, 32, 32)))
    assert expected_shapes(Architecture(algorithm, "resnet-101", 3)) == _shapes(gluon)


@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_builtin_tarball_predicts_gluoncvs_demo_masks_at_any_size(builtin, algorithm):
    net, tarball = builtin[algorithm]
    predictor = Predictor.load(tarball)
    assert predictor.hp.algorithm == algorithm and predictor.hp.crop_size == 64 and predictor.num_classes == 4
    for seed, (height, width) in enumerate(SIZES):
        rgb = random_rgb(seed, height, width)
        expected = demo_mask(net, rgb)
        assert len(np.unique(expected)) > 1  # a mask of one class would prove little
        assert np.array_equal(predictor.predict(rgb), expected)


def test_architecture_and_classes_come_from_the_parameter_file_alone(builtin, tmp_path):
    (tmp_path / "model_algo-1").write_bytes((builtin["deeplab"][1].parent / "model_algo-1").read_bytes())
    info = read_model(tmp_path)
    assert info.arch == Architecture("deeplab", "resnet-50", 4, "v1s", "gluoncv", aux=True)
    assert [c["name"] for c in info.classes] == ["class_0", "class_1", "class_2", "class_3"]
    assert info.stated == {"backbone", "algorithm", "num_classes"}  # crop_size is unknown without hyperparams.json
    classes = [{"index": i, "name": n, "color": "#000000"} for i, n in enumerate("abcd")]
    (tmp_path / "classes.json").write_text(json.dumps(classes))
    assert [c["name"] for c in read_model(tmp_path).classes] == list("abcd")


def test_v1b_stem_is_told_apart_by_its_shapes(tmp_path):
    net = gluoncv_net("fcn", stem="v1b")
    net.save_parameters(str(tmp_path / "model_algo-1"))
    assert detect_architecture(tmp_path / "model_algo-1").stem == "v1b"
    rgb = random_rgb(5, 48, 40)
    assert np.array_equal(Predictor.load(tmp_path).predict(rgb), demo_mask(net, rgb))


def test_seg_artifact_carries_a_model_algo_1_that_gluoncv_loads_strictly(tmp_path):
    import seg.engines.mxnet.gluoncv_compat  # noqa: F401  (before gluoncv: it refuses torch>=2 otherwise)
    from gluoncv.model_zoo import PSPNet

    hp = parse_hyperparameters({"num_classes": 4, "num_training_samples": 5, "algorithm": "psp", "crop_size": 64,
                                "use_pretrained_model": False, "seed": 3})
    net = build_network(hp)
    write_params(tmp_path / "p.params", weights_of(net))
    write_artifact(tmp_path / "p.params", hp, [{"index": i, "name": str(i)} for i in range(4)], tmp_path / "m")
    written = json.loads((tmp_path / "m" / "hyperparams.json").read_text())
    assert written["algorithm"] == "psp" and written["num_classes"] == "4" and written["crop_size"] == "64"
    assert all(isinstance(v, str) for v in written.values()) and "seed" not in written
    gluon = PSPNet(4, backbone="resnet50", aux=True, pretrained_base=False, crop_size=64)
    gluon.load_parameters(str(tmp_path / "m" / "model_algo-1"))  # strict: no missing, no extra parameter
    predictor = Predictor.load(tmp_path / "m")
    rgb = random_rgb(2, 40, 56)
    assert np.array_equal(predictor.predict(rgb), demo_mask(gluon, rgb))


def test_resnet50_artifacts_with_segs_former_heads_keep_loading_unchanged(tmp_path):
    hp = parse_hyperparameters({"num_classes": 3, "num_training_samples": 1, "algorithm": "deeplab",
                                "crop_size": 32, "use_pretrained_model": False})
    former = Architecture("deeplab", "resnet-50", 3, "v1s", "seg", aux=False)
    net = build_network(hp, arch=former)
    write_params(tmp_path / "p.params", weights_of(net))
    write_artifact(tmp_path / "p.params", hp, [{"index": i, "name": str(i)} for i in range(3)], tmp_path / "m",
                   arch=former)
    assert not (tmp_path / "m" / "model_algo-1").exists()  # the built-in cannot load seg's former heads
    loaded = Predictor.load(tmp_path / "m")
    assert loaded.arch == former
    data = mx.nd.random.normal(shape=(1, 3, 24, 40))
    assert np.allclose(net(data).asnumpy(), loaded.inference.net(data).asnumpy(), atol=1e-4)


def test_model_tarball_is_read_from_s3(builtin, s3, s3_bucket):
    net, tarball = builtin["psp"]
    s3.put_object(Bucket=s3_bucket, Key="job/output/model.tar.gz", Body=tarball.read_bytes())
    predictor = Predictor.load(f"s3://{s3_bucket}/job/output/model.tar.gz")
    rgb = random_rgb(7, 40, 48)
    assert np.array_equal(predictor.predict(rgb), demo_mask(net, rgb))


@pytest.mark.filterwarnings("ignore:Cannot decide type")
def test_exported_pair_gives_the_predictors_logits_without_seg_at_two_sizes(builtin, tmp_path):
    _, tarball = builtin["deeplab"]
    result = export_model(tarball, tmp_path / "out")
    imported = mx.gluon.SymbolBlock.imports(str(result.symbol), ["data"], str(result.params))
    signature = json.loads(result.signature.read_text())
    assert signature["input"]["name"] == "data" and signature["output"]["shape"][1] == 4
    predictor = Predictor.load(tarball)
    for seed, (height, width) in enumerate(SIZES):
        rgb = random_rgb(seed, height, width)
        data = mx.nd.array(((rgb / 255.0 - signature["preprocessing"]["mean"]) / signature["preprocessing"]["std"])
                           .transpose(2, 0, 1)[None].astype(np.float32))
        assert np.allclose(imported(data).asnumpy(), predictor.inference.net(mx.nd.array(normalize(rgb)[None])).asnumpy(),
                           atol=1e-4)


# ---------------------------------------------------------------- bad input


def _tarball_with(path, add):
    with tarfile.open(path, "w:gz") as tar:
        add(tar)
    return path


def _entry(name, data=b"x", kind=tarfile.REGTYPE, target=""):
    def add(tar):
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.size = kind, target, len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return add


def test_tarball_link_entry_is_refused_by_the_cli_in_one_line_writing_nothing(tmp_path):
    tarball = _tarball_with(tmp_path / "model.tar.gz", _entry("model_algo-1", kind=tarfile.SYMTYPE,
                                                              target="/etc/passwd"))
    result = subprocess.run([sys.executable, "-c", "from seg.cli import main; main()", "export", str(tarball),
                             str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode != 0 and "'model_algo-1' is a link" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_tarball_entry_escaping_the_folder_is_refused_before_anything_is_written(tmp_path):
    tarball = _tarball_with(tmp_path / "model.tar.gz", _entry("../escaped"))
    with pytest.raises(ModelError, match="'../escaped' would be written outside the extraction folder"):
        open_model(tarball, tmp_path / "scratch")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "scratch" / "model").exists()


def test_truncated_or_foreign_parameter_files_are_named(builtin, tmp_path):
    data = (builtin["fcn"][1].parent / "model_algo-1").read_bytes()
    cases = (("cut", data[: len(data) // 2], "the file is truncated"),
             ("torch", b"PK\x03\x04 a torch.save zip" * 10, "a PyTorch checkpoint"),
             ("foreign", b"GIF89a not parameters" * 10, "not an MXNet parameter file"))
    for name, body, reason in cases:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model_algo-1").write_bytes(body)
        with pytest.raises(ModelError, match=f"{name}/model_algo-1: .*{reason}"):
            read_model(tmp_path / name)


def test_parameters_of_no_known_architecture_list_what_each_candidate_expected(builtin, tmp_path):
    params = mx.nd.load(str(builtin["psp"][1].parent / "model_algo-1"))
    params["head.block.4.weight"] = mx.nd.zeros((4, 256, 1, 1))
    mx.nd.save(str(tmp_path / "model_algo-1"), params)
    with pytest.raises(ModelError) as info:
        read_model(tmp_path)
    message = str(info.value)
    assert "matches no known architecture" in message and "head.block.4.weight (4, 256, 1, 1) vs (4, 512, 1, 1)" in message
    assert "v1s stem" in message and "v1b stem" in message
    mx.nd.save(str(tmp_path / "model_algo-1"), {"fc.weight": mx.nd.zeros((10, 2048))})
    with pytest.raises(ModelError, match="no FCN/PSP/DeepLabV3 head"):
        read_model(tmp_path)


def test_hyperparams_json_contradicting_the_parameters_is_reported(builtin, tmp_path):
    (tmp_path / "model_algo-1").write_bytes((builtin["fcn"][1].parent / "model_algo-1").read_bytes())
    (tmp_path / "hyperparams.json").write_text(json.dumps({"num_classes": "3", "algorithm": "fcn"}))
    with pytest.raises(ModelError, match="contradicts the parameter file: num_classes=3 but the parameters are 4"):
        read_model(tmp_path)


def test_classes_json_with_the_wrong_count_is_refused(builtin, tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps([{"index": 0, "name": "a"}, {"index": 1, "name": "b"}]))
    with pytest.raises(ModelError, match="classes.json has 2 classes but the model has 4"):
        Predictor.load(builtin["fcn"][1], classes_path=tmp_path / "classes.json")


def test_incremental_job_differing_from_the_builtin_model_is_refused(builtin, tmp_path):
    info = read_model(open_model(builtin["psp"][1], tmp_path))
    job = parse_hyperparameters({"num_classes": 4, "num_training_samples": 8, "algorithm": "psp", "crop_size": 32})
    with pytest.raises(ModelError, match="crop_size: model 64 vs job 32"):
        check_compatible(info.hp, job, "model/", info.stated)
    with pytest.raises(ModelError, match="algorithm: model 'psp' vs job 'fcn'"):
        check_compatible(info.hp, parse_hyperparameters({"num_classes": 4, "num_training_samples": 8,
                                                         "crop_size": 64}), "model/", info.stated)
