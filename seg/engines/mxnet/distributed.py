"""Multi-host training on MXNet: parameter servers started from resourceconfig.json, gradient sync over the
dist_sync kvstore."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys

import mxnet as mx

log = logging.getLogger("seg.train")


class DistSync:
    """Multi-host data parallelism over MXNet's dist_sync kvstore, driven from the training loop.

    Gluon's Trainer initialises the kvstore one key at a time, which races when several workers and servers
    share a machine ("init N first", apache/mxnet#7893); one batched init avoids that. Gradients are summed
    across devices and hosts with pushpull; BatchNorm running statistics, which have no gradient, are
    averaged after each epoch so every host validates and saves the same model.
    """

    def __init__(self, kv, net):
        self.kv, self.workers = kv, kv.num_workers
        params = list(net.collect_params().values())
        self.trained = [p for p in params if p.grad_req != "null"]
        self.statistics = [p for p in params if p.grad_req == "null"]
        everything = self.trained + self.statistics
        keys = list(range(len(everything)))
        kv.init(keys, [mx.nd.array(p.list_data()[0].asnumpy()) for p in everything])
        for key, param in enumerate(everything):  # all hosts start from rank 0's weights
            plain = [mx.nd.zeros(param.shape, ctx=c, dtype=param.dtype) for c in param.list_ctx()]
            kv.pull(key, out=plain)
            for source, target in zip(plain, param.list_data()):
                source.copyto(target)
        mx.nd.waitall()

    def _pushpull(self, key, arrays):
        if arrays[0].context.device_type != "cpu":
            self.kv.pushpull(key, arrays, priority=-key)
            return
        # CPU arrays may be in an MKL-DNN layout, which the dist kvstore cannot send: go through plain copies
        plain = [mx.nd.array(a.asnumpy(), ctx=a.context) for a in arrays]
        self.kv.pushpull(key, plain, priority=-key)
        for source, target in zip(plain, arrays):
            source.copyto(target)

    def allreduce_gradients(self):
        for key, param in enumerate(self.trained):
            self._pushpull(key, param.list_grad())

    def average_statistics(self):
        for key, param in enumerate(self.statistics, start=len(self.trained)):
            self._pushpull(key, param.list_data())
            for array in param.list_data():
                array /= self.workers * len(param.list_data())
        mx.nd.waitall()


def start_parameter_servers(resource: dict) -> list:
    """MXNet's parameter-server roles for a multi-host job, from resourceconfig.json.

    Every host runs `seg train`; the first host (sorted names) also starts the scheduler, every host one
    server, and this process becomes a worker, so SageMaker's plain `train` on N instances forms one
    dist_sync job. $SEG_PS_ROOT_URI / $SEG_PS_ROOT_PORT override the scheduler's address (first host's
    name, port 9091), e.g. to run several "hosts" on one machine.
    """
    hosts = sorted(resource["hosts"])
    env = {
        "DMLC_PS_ROOT_URI": os.environ.get("SEG_PS_ROOT_URI") or socket.gethostbyname(hosts[0]),
        "DMLC_PS_ROOT_PORT": os.environ.get("SEG_PS_ROOT_PORT", "9091"),
        "DMLC_NUM_SERVER": str(len(hosts)),
        "DMLC_NUM_WORKER": str(len(hosts)),
    }
    if resource.get("network_interface_name") and "DMLC_NODE_HOST" not in os.environ:
        env["DMLC_INTERFACE"] = resource["network_interface_name"]
    roles = (["scheduler"] if resource["current_host"] == hosts[0] else []) + ["server"]
    servers = [subprocess.Popen([sys.executable, "-c", "import mxnet"], env={**os.environ, **env, "DMLC_ROLE": role})
               for role in roles]  # importing mxnet with DMLC_ROLE=server/scheduler runs that role until done
    os.environ.update(env, DMLC_ROLE="worker")
    log.info("host %s of %s: dist kvstore via %s:%s", resource["current_host"], hosts, env["DMLC_PS_ROOT_URI"],
             env["DMLC_PS_ROOT_PORT"])
    return servers


def _stop(processes, timeout=60):
    """Servers and the scheduler exit once every worker has finished; reap them (kill only if stuck)."""
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
