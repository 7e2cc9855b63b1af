#!/usr/bin/env python3
"""Runs the pods of a Kubernetes Job manifest on this machine, one after the other, to try a Parity
Job without a cluster: checks what a sharded suite needs (an Indexed Job whose completions,
parallelism and SHARD_COUNT agree, restartPolicy Never), then runs each pod's container command with
JOB_COMPLETION_INDEX set and each volume's mountPath replaced by a local directory.

    scripts/cluster/k8s_local.py MANIFEST --mount /suite=cases/my --mount /results=out/my \
        [--path build] [--check-only]

--path is put first on PATH (where `parity` is). Exit status: the first failing pod's, 2 when the
manifest is not what a Parity Job needs (the reason names the field).
"""
import argparse
import os
import subprocess
import sys

import yaml


def fail(message):
    print(f"k8s_local: {message}", file=sys.stderr)
    sys.exit(2)


def check_job(doc, where):
    """The Job's pod count and its single container; exits 2 naming the field that is wrong."""
    if doc.get("apiVersion") != "batch/v1" or doc.get("kind") != "Job":
        fail(f"{where}: expected apiVersion batch/v1, kind Job")
    spec = doc.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    if pod.get("restartPolicy") != "Never":
        fail(f"{where}: spec.template.spec.restartPolicy must be Never (a rerun pod would find its "
             "shard directory already written)")
    containers = pod.get("containers") or []
    if len(containers) != 1:
        fail(f"{where}: expected one container, found {len(containers)}")
    container = containers[0]
    env = {e["name"]: str(e.get("value", "")) for e in container.get("env") or []}
    pods = 1
    if spec.get("completionMode") == "Indexed":
        pods = spec.get("completions")
        if not isinstance(pods, int) or pods < 1:
            fail(f"{where}: spec.completions must be a positive integer")
        if spec.get("parallelism", pods) > pods:
            fail(f"{where}: spec.parallelism {spec['parallelism']} exceeds completions {pods}")
        if "SHARD_COUNT" in env and env["SHARD_COUNT"] != str(pods):
            fail(f"{where}: env SHARD_COUNT {env['SHARD_COUNT']} differs from spec.completions "
                 f"{pods}: prompts would be skipped or run twice")
    elif spec.get("completions", 1) != 1:
        fail(f"{where}: several completions without completionMode Indexed run the same shard")
    mounts = [m["mountPath"] for m in container.get("volumeMounts") or []]
    return pods, container, env, mounts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--mount", action="append", default=[], metavar="PATH=DIR")
    parser.add_argument("--path", default=None, help="directory put first on PATH")
    parser.add_argument("--check-only", action="store_true")
    args = parser.parse_args()

    try:
        with open(args.manifest) as f:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        fail(f"{args.manifest}: {e}")
    mapping = {}
    for item in args.mount:
        path, sep, local = item.partition("=")
        if not sep or not path.startswith("/"):
            fail(f"--mount {item}: expected /mount/path=LOCAL_DIR")
        mapping[path.rstrip("/")] = os.path.abspath(local)

    jobs = [(check_job(doc, f"{args.manifest} document {i + 1}"), doc) for i, doc in enumerate(docs)]
    for (pods, container, env, mounts), doc in jobs:
        unmapped = [m for m in mounts if m.rstrip("/") not in mapping]
        print(f"{doc['metadata']['name']}: {pods} pod(s), mounts {', '.join(mounts) or 'none'}"
              + (f" (not mapped: {', '.join(unmapped)})" if unmapped else ""))
    if args.check_only:
        return 0

    for (pods, container, env, _), doc in jobs:
        argv = list(container.get("command") or []) + [str(a) for a in container.get("args") or []]
        if not argv:
            fail(f"{doc['metadata']['name']}: the container has no command")
        # Longest mount paths first, so /results/x is not rewritten through /results.
        for path in sorted(mapping, key=len, reverse=True):
            argv = [a.replace(path, mapping[path]) for a in argv]
        for index in range(pods):
            pod_env = dict(os.environ, **env)
            if doc["spec"].get("completionMode") == "Indexed":
                pod_env["JOB_COMPLETION_INDEX"] = str(index)
            if args.path:
                pod_env["PATH"] = os.path.abspath(args.path) + os.pathsep + pod_env.get("PATH", "")
            status = subprocess.call(argv, env=pod_env)
            print(f"{doc['metadata']['name']} pod {index}: exit {status}")
            if status != 0:
                return status
    return 0


if __name__ == "__main__":
    sys.exit(main())
