#!/usr/bin/env python3
"""Lists the example files CI's fhir-check rejects, and which of its two checkers rejects each.

    ~/.cache/tideway-shared-tools/fhir-check-venv/bin/python profiles/scripts/list_fhir_check_rejects.py \
        > profiles/tests/fixtures/fhir-check-rejects.txt

Run ../shared/tools/fhir-check once first so that its virtualenv exists. Paths are relative to
../shared/data; only file names and checker names are written, never content.
"""
import os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data"))
sys.path.insert(0, os.path.normpath(os.path.join(DATA, "..", "tools")))
import fhir_check  # noqa: E402

FOLDERS = ["hl7-fhir-r4-examples", "uk-core-r4-examples/json-converted-by-fhirjs"]

checker = fhir_check.Checker(fhir_check.load_schema(os.path.join(DATA, "fhir-r4-schema", "fhir.schema.json")))
print("# Files under ../shared/data that ../shared/tools/fhir-check rejects, with the checkers that")
print("# reject each (schema: HL7's R4 JSON schema; fhirclient: PyPI fhirclient strict models).")
print("# Written by profiles/scripts/list_fhir_check_rejects.py; do not edit by hand.")
os.chdir(DATA)
for folder in FOLDERS:
    for label, res in fhir_check.resources(folder):
        found = list(checker.problems(res)) if isinstance(res, dict) else ["/: not a JSON object"]
        if found:
            who = sorted({"fhirclient" if "fhirclient strict" in f else "schema" for f in found})
            print(label, ",".join(who))
