r"""The OD API peer's benchmark (`bench_odapi.py` of `../shared/peers/`) on another pipeline config.

    PYTHONPATH=<peers>/odapi TF_USE_LEGACY_KERAS=1 <peers>/tfmg/bin/python \
        benchmarks/odapi_on_config.py <peers> <pipeline.config> --mode train --batch 8 --size 128

The peer's script builds its network from one config of the OD API's own tree; this runs the same
script, its step and its timing unchanged, on the config given instead (its `num_classes` must
be 90: the script's random labels are one-hot over 90 classes). `peers_benchmark.py` uses it to
time the OD API on this project's small CPU config, the one peer that runs that network.
Run it with the OD API's interpreter; it imports nothing from this project.
"""
import sys


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: odapi_on_config.py PEERS_DIR PIPELINE_CONFIG [bench_odapi.py flags]")
    peers_dir, config = sys.argv[1], sys.argv[2]
    sys.argv = [sys.argv[0], *sys.argv[3:]]
    sys.path.insert(0, peers_dir)
    import bench_odapi  # the peer's script (it dates the process start from /proc)

    bench_odapi.CONFIG = config
    bench_odapi.main()


if __name__ == "__main__":
    main()
