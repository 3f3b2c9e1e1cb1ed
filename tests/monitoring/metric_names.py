"""What the service really exports, and which metric names a PromQL expression uses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client import REGISTRY, Metric
from prometheus_client.utils import floatToGoString

import aeroflow.observability.metrics  # noqa: F401 - registers every aeroflow metric

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "monitoring" / "prometheus"
RULE_FILES = (PROMETHEUS_DIR / "recording.rules.yml", PROMETHEUS_DIR / "alerts.rules.yml")

# Cloud Monitoring metrics read through stackdriver_exporter, and Prometheus' own series.
EXTERNAL_PREFIXES = ("stackdriver_pubsub_", "up")
# Labels Prometheus attaches to every scraped series.
TARGET_LABELS = frozenset({"job", "instance"})
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
}
_PROMQL_WORDS = frozenset(
    {
        *("sum", "rate", "irate", "increase", "max", "min", "avg", "count", "topk", "bottomk"),
        *("by", "without", "on", "ignoring", "group_left", "group_right"),
        *("and", "or", "unless", "bool", "offset", "le", "inf", "nan"),
        *("histogram_quantile", "vector", "scalar", "time", "round", "clamp_min", "clamp_max"),
        *("absent", "absent_over_time", "max_over_time", "min_over_time", "sum_over_time"),
        *("avg_over_time", "label_replace"),
    }
)


@dataclass(frozen=True)
class ExportedSeries:
    family: str
    labels: frozenset[str]
    buckets: frozenset[str]  # `le` values as the exposition writes them


def exported_series() -> dict[str, ExportedSeries]:
    """Every sample name the service's registry can expose (aeroflow's and the process
    collector's), with its label names and buckets."""
    found: dict[str, ExportedSeries] = {}
    for collector in list(REGISTRY._collector_to_names):  # no public listing of collectors
        labelnames = frozenset(getattr(collector, "_labelnames", ()))
        bounds = getattr(collector, "_upper_bounds", ())
        buckets = frozenset(floatToGoString(b) for b in bounds)
        families: list[Metric] = list(collector.collect())
        for family in families:
            for suffix in _SUFFIXES.get(family.type, ("",)):
                extra = {"le"} if suffix == "_bucket" else set()
                found[family.name + suffix] = ExportedSeries(
                    family.name, labelnames | extra, buckets
                )
    return found


def recorded_names() -> set[str]:
    names: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (functions, keywords, labels removed)."""
    text = _MATCHERS.sub(" ", _STRING.sub(" ", expr))
    text = _RANGE.sub(" ", text)
    # Label lists after by/without/on/ignoring/group_* are not metric names.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        end = match.end()
        if word.lower() in _PROMQL_WORDS or text[end : end + 1] == "(":
            continue
        if re.fullmatch(r"\d+[smhdwy]", word):
            continue
        names.add(word)
    return names


def label_matchers(expr: str) -> list[tuple[str | None, str, str, str]]:
    """(metric or None, label, operator, value) for every matcher in ``expr``."""
    found = []
    for selector in _SELECTOR.finditer(expr):
        for label, op, value in _MATCHER.findall(selector.group(2)):
            found.append((selector.group(1), label, op, value))
    return found
