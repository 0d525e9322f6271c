"""Fuzz campaign for the boot-log and spec parsers, then a linear-time check of the log parser.

Runs the contract of tests/fuzz_corpus.py at scale: every input parses to a consistent
machine or fails with a clear ValueError. Inputs per parser: three quarters mutations of the
real logs (tests/data/dmesg) or example specs, one quarter the
hypothesis strategies of tests/test_fuzz_*.py (synthetic logs checked against a naive e820
model, SRAT splits, structured specs, near-grammar and arbitrary text). Failing inputs are
saved to --failures with their traceback; the exit status is 1 if any input failed.

The linear-time check pads a real log with kernel noise lines to 10**4, 10**5 and 10**6
lines (its own lines kept in order, so the machine must come out the same) and prints
seconds per line: flat means linear.

    python perf/fuzz_parsers.py [--count 100000] [--seed 0] [--failures DIR] [--lines ...]
"""

import argparse
import random
import signal
import sys
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fuzz_corpus as fc  # noqa: E402
import test_fuzz_bootlog as tb  # noqa: E402
import test_fuzz_spec as ts  # noqa: E402

from fastinit.machine.bootlog import parse_bootlog
from fastinit.machine.loglines import log_lines  # noqa: E402

# An input slower than this counts as a hang (the parsers take milliseconds).
TIMEOUT_S = 10


class Campaign:
    """Runs inputs under the contract, counting outcomes and saving failures."""

    def __init__(self, failures: Path):
        self.failures, self.failed, self.inputs = failures, 0, 0

    def run(self, parser: str, check, value) -> None:
        self.inputs += 1
        signal.alarm(TIMEOUT_S)
        try:
            check(value)
        except Exception:  # anything but the contract's ValueError: a bug
            self.save(parser, value, traceback.format_exc())
        finally:
            signal.alarm(0)

    def save(self, parser: str, value, trace: str) -> None:
        self.failed += 1
        self.failures.mkdir(parents=True, exist_ok=True)
        stem = self.failures / f"{parser}-{self.failed:04d}"
        text = value if isinstance(value, str) else repr(value)
        stem.with_suffix(".input").write_text(text, errors="surrogatepass")
        stem.with_suffix(".traceback").write_text(trace)
        print(f"FAILURE {stem}.input: {trace.strip().splitlines()[-1][:200]}", flush=True)

    def hypothesis(self, parser: str, test, strategy, examples: int, seed: int) -> None:
        """Run a hypothesis test's body on ``examples`` inputs; failures are saved, not shrunk."""
        body = test.hypothesis.inner_test

        @hypothesis_seed(seed)
        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def run(value):
            self.run(parser, body, value)
        run()


def timeout(signum, frame):
    raise TimeoutError(f"input took more than {TIMEOUT_S} s")


def fuzz_bootlog(campaign: Campaign, count: int, seed: int) -> None:
    rng = random.Random(seed)
    names = sorted(fc.LOGS)
    for index in range(count - 3 * (count // 12)):
        text = fc.mutate_log(rng, fc.LOGS[rng.choice(names)])
        campaign.run("bootlog", lambda t: fc.check_bootlog(t, source=f"input{index}"), text)
    for test, strategy in [(tb.test_synthetic_e820_map_matches_naive_model, tb.e820_logs()),
                           (tb.test_synthetic_srat_split_gives_each_node_only_its_ranges,
                            tb.srat_logs()),
                           (tb.test_arbitrary_text_parses_or_names_the_line, tb.LOG_TEXT)]:
        campaign.hypothesis("bootlog", test, strategy, count // 12, seed)


def fuzz_spec(campaign: Campaign, count: int, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(count - 3 * (count // 12)):
        campaign.run("spec", fc.check_spec, fc.mutate_spec(rng, rng.choice(fc.SPECS)))
    for test, strategy in [(ts.test_structured_spec_gives_the_nodes_cpus_and_pages_it_names,
                            ts.specs()),
                           (ts.test_near_grammar_spec_parses_or_names_the_spec, ts.NEAR_GRAMMAR),
                           (ts.test_arbitrary_text_spec_parses_or_names_the_spec, ts.SPEC_TEXT)]:
        campaign.hypothesis("spec", test, strategy, count // 12, seed)


def padded_log(lines: int, rng: random.Random) -> str:
    """The EPYC log (607 lines, 38 e820 entries, 384 CPUs) padded with noise to ``lines``."""
    real = log_lines(fc.LOGS["epyc9654-2node-el9-5.14.txt"])
    noise = [fc.random_prefix(rng) + line for line in rng.choices(fc.NOISE, k=1000)]
    # Each real line keeps its place; noise fills the gaps evenly.
    per_gap, out = (lines - len(real)) // len(real), []
    for line in real:
        out.append(line)
        out.extend(noise[(len(out) + k) % len(noise)] for k in range(per_gap))
    return "\n".join(out)


def linear_check(sizes: list[int], seed: int) -> bool:
    """Print parse seconds per line for each size; True if it stays within 2x of the first."""
    rng = random.Random(seed)
    expected = parse_bootlog(fc.LOGS["epyc9654-2node-el9-5.14.txt"])
    per_line = []
    print(f"\n{'lines':>9} {'seconds':>9} {'us/line':>8}")
    for size in sizes:
        text = padded_log(size, rng)
        best = float("inf")
        for _ in range(3 if size <= 100_000 else 1):
            began = time.perf_counter()
            topology = parse_bootlog(text)
            best = min(best, time.perf_counter() - began)
        assert topology == expected, "padding changed the machine"
        count = len(log_lines(text))
        per_line.append(best / count)
        print(f"{count:>9} {best:>9.3f} {best / count * 1e6:>8.2f}")
    flat = max(per_line) < 2 * min(per_line)
    print(f"time per line {'stays flat' if flat else 'GROWS'}: "
          f"{max(per_line) / min(per_line):.2f}x between sizes")
    return flat


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="inputs per parser")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--failures", type=Path, default=Path("fuzz-failures"),
                        help="where failing inputs are saved (default ./fuzz-failures)")
    parser.add_argument("--lines", default="10000,100000,1000000",
                        help="log sizes for the linear-time check ('' to skip)")
    args = parser.parse_args()
    signal.signal(signal.SIGALRM, timeout)
    campaign = Campaign(args.failures)
    for name, fuzz in [("bootlog", fuzz_bootlog), ("spec", fuzz_spec)]:
        began, inputs, failed = time.perf_counter(), campaign.inputs, campaign.failed
        fuzz(campaign, args.count, args.seed)
        print(f"{name}: {campaign.inputs - inputs} inputs, {fc.OUTCOMES[name + ' ok']} parsed, "
              f"{fc.OUTCOMES[name + ' rejected']} rejected with ValueError, "
              f"{campaign.failed - failed} failures, {time.perf_counter() - began:.0f} s",
              flush=True)
    flat = linear_check([int(n) for n in args.lines.split(",")], args.seed) if args.lines \
        else True
    return 1 if campaign.failed or not flat else 0


if __name__ == "__main__":
    sys.exit(main())
