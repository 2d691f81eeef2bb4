#!/usr/bin/env python3
"""Derives profiles/data/r4-elements.txt from HL7's R4 StructureDefinitions: for every resource
type, each top-level element with the three flags that `_summary` and `_elements` need.

    python3 profiles/scripts/derive_r4_elements.py [SCHEMA [DEFINITIONS [OUT]]]

SCHEMA (only its ResourceList is read, for the list of resource types) defaults to
../shared/data/fhir-r4-schema/fhir.schema.json, DEFINITIONS to ../shared/data/hl7-fhir-r4-examples
(HL7's hl7.fhir.r4.examples 4.0.1 package, holding the base StructureDefinition of every
resource), OUT to profiles/data/r4-elements.txt; paths are relative to the workspace root.
Python 3 standard library only; the output is deterministic.

Output format (one record a line, fields separated by a single space; '#' lines are comments):

    <Type> <element> <flags>     a top-level element of resource <Type>; a choice element keeps
                                 its `[x]` (e.g. `onset[x]`); flags are any of
                                   S  in the summary (ElementDefinition.isSummary)
                                   M  mandatory (ElementDefinition.min >= 1)
                                   X  a modifier (ElementDefinition.isModifier)
                                 or '-' for none
"""
import json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCHEMA = os.path.join(ROOT, "..", "shared", "data", "fhir-r4-schema", "fhir.schema.json")
DEFINITIONS = os.path.join(ROOT, "..", "shared", "data", "hl7-fhir-r4-examples")
OUT = os.path.join(ROOT, "profiles", "data", "r4-elements.txt")


def fail(msg):
    sys.exit("derive_r4_elements: " + msg)


def main(argv):
    schema_path = argv[1] if len(argv) > 1 else SCHEMA
    definitions = argv[2] if len(argv) > 2 else DEFINITIONS
    out_path = argv[3] if len(argv) > 3 else OUT
    schema = json.load(open(schema_path, encoding="utf-8"))
    resources = sorted(r["$ref"].rsplit("/", 1)[1] for r in schema["definitions"]["ResourceList"]["oneOf"])
    lines = [
        "# Derived from HL7's R4 StructureDefinitions by profiles/scripts/derive_r4_elements.py;",
        "# do not edit by hand. See profiles/data/README.md for provenance and licence.",
    ]
    for name in resources:
        path = os.path.join(definitions, f"StructureDefinition-{name}.json")
        if not os.path.exists(path):
            fail(f"no StructureDefinition for {name} in {definitions}")
        sd = json.load(open(path, encoding="utf-8"))
        if sd.get("url") != "http://hl7.org/fhir/StructureDefinition/" + name:
            fail(f"{path} is not the base definition of {name}")
        seen = 0
        for element in sd["snapshot"]["element"]:
            parts = element["path"].split(".")
            if len(parts) != 2 or parts[0] != name:
                continue
            flags = ""
            if element.get("isSummary"):
                flags += "S"
            if element.get("min", 0) >= 1:
                flags += "M"
            if element.get("isModifier"):
                flags += "X"
            lines.append(f"{name} {parts[1]} {flags or '-'}")
            seen += 1
        if seen == 0:
            fail(f"{name}: no top-level elements")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out_path}: {len(lines)} lines, {sum(len(l) + 1 for l in lines)} bytes")


if __name__ == "__main__":
    main(sys.argv)
