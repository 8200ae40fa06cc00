# Parses Prometheus text exposition (stdin) with the reference Python client's
# parser and prints one canonical line per sample: NAME{k="v",...} VALUE, labels
# sorted. Exits non-zero on a parse error or a family without HELP or TYPE.
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser raises ValueError and friends
    print(f"parse error: {e}", file=sys.stderr)
    sys.exit(2)
if not families:
    print("no metric families", file=sys.stderr)
    sys.exit(2)
for family in families:
    if not family.documentation or family.type == "unknown":
        print(f"{family.name}: missing # HELP or # TYPE", file=sys.stderr)
        sys.exit(3)
    for sample in family.samples:
        if family.type == "counter" and not sample.name.endswith(("_total", "_created")):
            print(f"{sample.name}: counter sample without _total", file=sys.stderr)
            sys.exit(3)
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        print(f"{sample.name}{{{labels}}} {sample.value!r}")
