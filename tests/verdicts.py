"""The lines the CPU rule (``urlfleet.report.cpu.cpu_verdict``) can give, for tests that
see one in a command's output: whether the run was CPU-bound depends on the machine's load,
so they check that the line is one of these, not which."""

from __future__ import annotations

import re

# Every line the rule can give, so the end-to-end checks can tell one when they see it.
FORMS = [
    r"not CPU-bound \(\d+% of one core in \d+ process(es)?\): more processes would not help; "
    r"(the pace was set by .+|the run took [\d.]+x its ideal \(set by .+\))",
    r"client CPU was the bottleneck: \d+% of one core in \d+ process(es)?; (--processes \d+ "
    r"\((this machine's cores|one per host)\) would help|--processes \d+ would not pay on a run "
    r"this short \(starting them takes ~[\d.]+ s\)|already \d+ process(es)? on \d+ cores?: more "
    r"would not help here|already \d+ processes for \d+ hosts, each host in one process: more "
    r"would not help here|all on 1 host, which one process fetches: more "
    r"processes would not help)",
    r"client CPU was the bottleneck: \d+% of one core in \d+ processes; this process \(it "
    r"writes every record\) used \d+% of a core: more processes would not help",
    r"client CPU busy \(\d+% of one core in \d+ process(es)?\), but the run took "
    r"[\d.]+x its ideal: more processes would not help; the pace was set by .+",
]


def is_a_verdict(line: str) -> bool:
    return any(re.fullmatch(form, line) for form in FORMS)
