#!/usr/bin/python3
"""docs/jobs.schema.json against the published specs: the schema is valid
JSON Schema (draft 2020-12), every example in examples/jobs/ validates, and
every spec in server/fleetd/jobs/testdata/bad-specs/ is refused (the parser
refuses the same files: job_spec_examples_test).

Usage: spec_schema_test.py SOURCE_DIR
"""
import json
import pathlib
import re
import sys

import jsonschema
import yaml


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML reads YAML 1.1, where `on`, `off`, `yes` and `no` are booleans;
    fleetd (yaml-cpp) and editors read YAML 1.2, where only true and false
    are, so `notify: {on: [...]}` keeps its key."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for first in "tTfF":
    Yaml12Loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list(first))


def load(path: pathlib.Path):
    return yaml.load(path.read_text(), Loader=Yaml12Loader)


def main() -> int:
    source = pathlib.Path(sys.argv[1])
    schema = json.loads((source / "docs" / "jobs.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failures = []

    examples = sorted((source / "examples" / "jobs").glob("*.yaml"))
    if len(examples) < 3:
        failures.append(f"expected at least 3 examples, found {len(examples)}")
    for path in examples:
        errors = list(validator.iter_errors(load(path)))
        for error in errors:
            failures.append(f"{path.name}: {'/'.join(map(str, error.absolute_path))}: {error.message}")
        print(f"{path.name}: {'valid' if not errors else 'INVALID'}")

    bad = sorted((source / "server" / "fleetd" / "jobs" / "testdata" / "bad-specs").glob("*.yaml"))
    if len(bad) < 5:
        failures.append(f"expected at least 5 bad specs, found {len(bad)}")
    for path in bad:
        errors = list(validator.iter_errors(load(path)))
        if not errors:
            failures.append(f"{path.name}: the schema accepts a spec the parser refuses")
        else:
            print(f"{path.name}: refused ({errors[0].message[:80]})")

    for failure in failures:
        print("FAIL", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
