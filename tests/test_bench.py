"""fastinit bench: same-run figures with equal thread counts, honest labels, the plot."""

import json

import pytest

from fastinit.bench.run import BenchResult, BenchRow, PeerRow, run_bench
from fastinit.report.bench import bench_lines
from fastinit.cli import main
from fastinit.host.cpus import usable_cpus
from fastinit.engine.workpool import shared_pool
from fastinit.layout import PAGE_DTYPE, PAGES_PER_SECTION
from fastinit.machine.spec import parse_spec
from fastinit.mm.plan import plan_boot
from fastinit.mm.run import boot

SPEC = "1x1G,cpus=2"


@pytest.fixture(scope="module")
def result():
    return run_bench(parse_spec(SPEC), [1, 2], repeat=1, peers=True)


def test_rows_hold_consistent_same_run_figures(result):
    pages = sum(node.pages for node in boot(parse_spec(SPEC), threads=1).nodes)
    assert result.deferred_bytes == pages * PAGE_DTYPE.itemsize
    assert [row.threads for row in result.rows] == [1, 2]
    assert result.rows[0].speedup == 1.0 and result.rows[0].threads_run == 1
    for row in result.rows:
        assert row.ratio_to_memset == pytest.approx(row.memset_ms / row.deferred_ms)
        assert row.gbps == pytest.approx(result.deferred_bytes / row.deferred_ms / 1e6)
        assert row.speedup == pytest.approx(result.rows[0].deferred_ms / row.deferred_ms)
        assert row.deferred_ms_stdev == 0.0  # one run has no spread
    assert result.repeat == 1


def test_peers_run_at_the_thread_counts_fastinit_ran(result):
    names = {(peer.name, peer.threads) for peer in result.peers}
    assert ("numpy", 1) in names and ("numba.prange", 1) in names
    assert {("fastinit plain stores", row.threads_run) for row in result.rows} <= names


@pytest.mark.filterwarnings("ignore::fastinit.engine.padata.OversubscriptionWarning")
def test_more_threads_than_cpus_are_labelled_with_the_threads_that_ran():
    # Issue 9 item 14: --threads 64 on 2 CPUs ran 3 threads of deferred init against 64 of
    # memset and was reported as 64.
    asked = usable_cpus() + 2
    bench = run_bench(parse_spec(SPEC), [asked], repeat=1, peers=False)
    (row,) = bench.rows
    assert row.threads == asked
    # As many as ran: the pool's size, or fewer where the node defers fewer sections.
    (node,) = plan_boot(parse_spec(SPEC)).nodes
    ran = min(shared_pool().size, (node.job[1] - node.job[0]) // PAGES_PER_SECTION)
    assert row.threads_run == ran
    (line,) = [text for text in bench_lines(bench, 2) if f"({asked:>3})" in text]
    assert f"({asked:>3})  {ran:>3}" in line


def synthetic(peer_ms):
    machine = dict(cpu="CPU X", cpus=2, memory_gib=8.0, python="3", numpy="2", numba="0",
                   llvmlite="0", fastinit="0")
    return BenchResult(machine, "spec 1x1G", "stream", 3, 1 << 20, 5.0,
                       [BenchRow(1, 1, 10.0, 0.5, 0.1, 8.0, 0.8)],
                       [PeerRow("numpy", 1, peer_ms, 0.1)])


def test_peer_line_says_slower_when_fastinit_is_slower():
    assert "fastinit  1.25x slower" in bench_lines(synthetic(8.0), 2)[-1]
    assert "fastinit  2.00x faster" in bench_lines(synthetic(20.0), 2)[-1]


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(threads=[1], repeat=0), ValueError, "repeat must be >= 1"),
    (dict(threads=[1], repeat=1.5), TypeError, "repeat must be an integer"),
    (dict(threads=[], repeat=1), TypeError, "threads must be a non-empty list"),
    (dict(threads=[0], repeat=1), ValueError, "threads must be >= 1"),
    (dict(threads=[1], repeat=1, kernel="fast"), ValueError, "unknown deferred-init kernel"),
])
def test_bad_arguments_are_refused_before_measuring(kwargs, error, words):
    with pytest.raises(error, match=words):
        run_bench(parse_spec(SPEC), **kwargs)


def test_cli_bench_json_has_a_row_per_thread_count(capsys):
    status = main(["bench", "--spec", SPEC, "--repeat", "1", "--threads", "1,2",
                   "--no-peers", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert [row["threads"] for row in document["rows"]] == [1, 2]
    assert document["repeat"] == 1 and document["peers"] == []


@pytest.mark.parametrize("path, words", [
    ("/nonexistent/x.png", "the folder '/nonexistent' does not exist"),
    ("x.txt", "end it in .png, .svg, .pdf"),
])
def test_bad_plot_path_fails_before_the_benchmark(capsys, monkeypatch, path, words):
    from fastinit.bench import run
    ran = []
    monkeypatch.setattr(run, "run_bench", lambda *args, **kwargs: ran.append(args))
    status = main(["bench", "--spec", SPEC, "--repeat", "1", "--plot", path])
    out, err = capsys.readouterr()
    assert status == 2 and ran == [] and out == ""
    assert words in err


def test_plot_write_failure_still_prints_the_table(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from fastinit.report import bench_plot as plotting

    def disk_full(result, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plotting, "plot", disk_full)
    status = main(["bench", "--spec", SPEC, "--repeat", "1", "--threads", "1", "--no-peers",
                   "--plot", str(tmp_path / "b.png")])
    out, err = capsys.readouterr()
    assert status == 74
    assert "speed vs memset" in out and "bigger is faster" in out
    assert "cannot write the plot" in err and "No space left" in err


def test_plot_has_integer_ticks_axes_from_zero_error_bars_peers_and_a_full_title(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.container import ErrorbarContainer

    from fastinit.report.bench_plot import draw, plot
    bench = synthetic(8.0)
    bench.rows.append(BenchRow(4, 2, 6.0, 0.4, 0.17, 7.0, 1.1, speedup=10 / 6))
    figure = draw(bench)
    times, speedups, rates = figure.axes
    for axes in figure.axes:
        assert list(axes.get_xticks()) == [1, 4]
        assert axes.get_ylim()[0] == 0
    bars = [c for c in times.containers if isinstance(c, ErrorbarContainer)]
    assert {c.get_label() for c in bars} == {"fastinit (stream)", "numpy"}
    deferred = next(c for c in bars if c.get_label() == "fastinit (stream)")
    low, high = deferred.lines[1][0].get_ydata(), deferred.lines[1][1].get_ydata()
    assert list(high - low) == pytest.approx([1.0, 0.8])  # ±1 stdev around each median
    title = figure._suptitle.get_text()
    for words in ("CPU X", "GiB of descriptors", "stream kernel", "median of 3 runs"):
        assert words in title
    path = tmp_path / "b.png"
    plot(bench, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
