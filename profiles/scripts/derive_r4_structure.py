#!/usr/bin/env python3
"""Derives profiles/data/r4-structure.txt from HL7's FHIR R4 JSON schema and HL7's R4
StructureDefinitions.

    python3 profiles/scripts/derive_r4_structure.py [SCHEMA [DEFINITIONS [OUT]]]

SCHEMA defaults to ../shared/data/fhir-r4-schema/fhir.schema.json (relative to the workspace
root), DEFINITIONS to ../shared/data/hl7-fhir-r4-examples (HL7's hl7.fhir.r4.examples 4.0.1
package, which holds the base StructureDefinition of every resource and data type), OUT to
profiles/data/r4-structure.txt. Python 3 standard library only. The output is deterministic, so
regenerating from the same inputs gives the same bytes.

Almost everything comes from the schema. The StructureDefinitions add the two R4 rules the
schema cannot express and fhirbolt strict (the validator before this one) enforced: primitive
elements with a minimum cardinality of 1 (the schema lists only complex ones in `required`,
because a primitive may instead be given by its `_x` sibling alone), and choice types
(`value[x]`): at most one variant, and at least one where the element's minimum is 1.

The schema is HL7's 4.0.0 build, whose fhirVersion enums lack 4.0.1 (the version R4 resources
carry); 4.0.1 is added to them here, as CI's fhir-check does, and nothing else is changed.

Output format (one record a line, fields separated by a single space; '#' lines are comments):

    K <kind> <json-type> [<pattern>]   a primitive kind; json-type is string, number, boolean or
                                       any; the pattern (the rest of the line) is the schema's, for
                                       the Rust matchers to be checked against
    T <Type> [<required>,...]          a resource or complex type; required names after it
    R <Type>                           a resource type (the ResourceList oneOf), after all T lines
    <prop> <spec>                      a property of the last T, where spec is
                                         [*][+](<Kind>|<Type>|@|=<v>|<v>...|#<const>)
                                       '*' array; '+' has a `_prop` sibling (Element, array if the
                                       prop is); '@' any resource (ResourceList); '=' an enum of
                                       code values separated by '|'; '#' a constant
    ! <prop>                           (from the StructureDefinitions) R4 requires primitive
                                       <prop> of the last T: <prop> or `_<prop>` must be present
    ? <base> <min> <variant>,...       a choice type <base>[x] of the last T: at most one of the
                                       variants (or their `_` siblings), at least one if min is 1
"""
import json, os, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCHEMA = os.path.join(ROOT, "..", "shared", "data", "fhir-r4-schema", "fhir.schema.json")
DEFINITIONS = os.path.join(ROOT, "..", "shared", "data", "hl7-fhir-r4-examples")
OUT = os.path.join(ROOT, "profiles", "data", "r4-structure.txt")

# Patterns the schema writes inline on a property without naming a primitive definition for them.
INLINE_KINDS = {("string", r"^(\s*([0-9a-zA-Z\+/=]){4}\s*)+$"): "base64Binary.inline"}


def fail(msg):
    sys.exit("derive_r4_structure: " + msg)


def main(argv):
    schema_path = argv[1] if len(argv) > 1 else SCHEMA
    definitions = argv[2] if len(argv) > 2 else DEFINITIONS
    out_path = argv[3] if len(argv) > 3 else OUT
    raw = open(schema_path, "rb").read()
    schema = json.loads(raw)
    defs = schema["definitions"]
    resources = [r["$ref"].rsplit("/", 1)[1] for r in defs["ResourceList"]["oneOf"]]

    kinds = {}  # name -> (json type, pattern)
    for name, d in defs.items():
        if "properties" in d or name == "ResourceList":
            continue
        if set(d) - {"description", "type", "pattern"}:
            fail(f"primitive {name} uses keywords this script does not know")
        kinds[name] = (d.get("type", "any"), d.get("pattern"))
    by_shape = {v: k for k, v in kinds.items() if v[1] is not None}
    for shape, name in INLINE_KINDS.items():
        kinds[name] = shape

    def spec_of(where, p):
        items = p.get("items")
        if p.get("type") == "array":
            if set(p) - {"description", "type", "items"}:
                fail(f"{where}: array with unknown keywords")
            return "*" + spec_of(where, items)
        if set(p) - {"description", "$ref", "type", "pattern", "enum", "const"}:
            fail(f"{where}: unknown keywords {sorted(set(p))}")
        if "$ref" in p:
            target = p["$ref"].rsplit("/", 1)[1]
            if target == "ResourceList":
                return "@"
            if target not in defs:
                fail(f"{where}: dangling $ref")
            return target
        if "enum" in p:
            values = list(p["enum"])
            if where.endswith(".fhirVersion") and "4.0.1" not in values:
                values.append("4.0.1")
            if any(not isinstance(v, str) or " " in v or "|" in v or not v for v in values):
                fail(f"{where}: enum values this format cannot hold")
            return "=" + "|".join(values)
        if "const" in p:
            return "#" + p["const"]
        shape = (p.get("type"), p.get("pattern"))
        if shape in by_shape:
            return by_shape[shape]
        if shape in INLINE_KINDS:
            return INLINE_KINDS[shape]
        fail(f"{where}: inline primitive with an unknown pattern")

    extra = r4_rules(defs, definitions)

    lines = [
        "# Derived from HL7's FHIR R4 JSON schema by profiles/scripts/derive_r4_structure.py;",
        "# do not edit by hand. See profiles/data/README.md for provenance and licence.",
        f"# schema id {schema.get('id')}, {len(raw)} bytes",
    ]
    for name in sorted(kinds):
        json_type, pattern = kinds[name]
        lines.append(" ".join(x for x in ("K", name, json_type, pattern) if x))
    for name in sorted(n for n, d in defs.items() if "properties" in d):
        d = defs[name]
        if set(d) - {"description", "properties", "additionalProperties", "required"}:
            fail(f"{name}: unknown keywords")
        if d.get("additionalProperties") is not False:
            fail(f"{name}: additionalProperties is not false")
        props = d["properties"]
        required = d.get("required", [])
        lines.append(f"T {name} {','.join(required)}".rstrip())
        for pname, p in props.items():
            if pname.startswith("_"):
                base = props.get(pname[1:])
                elem = p.get("items", p).get("$ref")
                if base is None or elem != "#/definitions/Element" or ("items" in p) != ("items" in base):
                    fail(f"{name}.{pname}: a _ property that is not a primitive's extension sibling")
                continue
            spec = spec_of(f"{name}.{pname}", p)
            if "_" + pname in props:
                spec = spec.replace("*", "*+", 1) if spec.startswith("*") else "+" + spec
            lines.append(f"{pname} {spec}")
        for pname in extra["required"].get(name, []):
            lines.append(f"! {pname}")
        for base, (minimum, variants) in sorted(extra["choices"].get(name, {}).items()):
            lines.append(f"? {base} {minimum} {','.join(variants)}")
    for name in resources:
        if defs[name]["properties"].get("resourceType", {}).get("const") != name:
            fail(f"{name}: resourceType is not its const")
        lines.append(f"R {name}")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out_path}: {len(lines)} lines, {sum(len(l) + 1 for l in lines)} bytes")


def target_of(prop):
    ref = prop.get("items", prop).get("$ref", "")
    return ref.rsplit("/", 1)[1] if ref else None


def r4_rules(defs, folder):
    """Required primitives and choice groups, keyed by schema definition name."""
    required, choices = {}, {}
    names = sorted(n for n, d in defs.items() if "properties" in d and "_" not in n)
    for type_name in names:
        path = os.path.join(folder, f"StructureDefinition-{type_name}.json")
        if not os.path.exists(path):
            fail(f"no StructureDefinition for {type_name} in {folder}")
        sd = json.load(open(path, encoding="utf-8"))
        if sd.get("url") != "http://hl7.org/fhir/StructureDefinition/" + type_name:
            fail(f"{path} is not the base definition of {type_name}")
        for element in sd["snapshot"]["element"]:
            parts = element["path"].split(".")
            if len(parts) < 2:
                continue
            # Walk the schema from the type down to the element's parent.
            owner = type_name
            for seg in parts[1:-1]:
                prop = defs[owner]["properties"].get(seg)
                owner = target_of(prop) if prop else None
                if owner is None or "properties" not in defs.get(owner, {}):
                    fail(f"{element['path']}: no schema definition for its parent")
            last = parts[-1]
            props = defs[owner]["properties"]
            schema_required = defs[owner].get("required", [])
            minimum = element.get("min", 0)
            if last.endswith("[x]"):
                base = last[:-3]
                codes = [t["code"] for t in element.get("type", [])]
                variants = [base + c[0].upper() + c[1:] for c in codes]
                # 4.0.1 added Meta to the open types; the 4.0.0 schema does not know it, and a
                # key the schema does not know is rejected anyway.
                variants = [v for v in variants if v in props]
                if not variants:
                    fail(f"{element['path']}: no variant the schema has")
                choices.setdefault(owner, {})[base] = (min(minimum, 1), variants)
            elif minimum >= 1 and last not in schema_required:
                if last not in props:
                    fail(f"{element['path']}: not in the schema")
                if target_of(props[last]) not in defs or "properties" in defs[target_of(props[last])]:
                    if "enum" not in props[last].get("items", props[last]):
                        fail(f"{element['path']}: a required complex element the schema does not require")
                if last not in required.setdefault(owner, []):
                    required[owner].append(last)
    return {"required": required, "choices": choices}


if __name__ == "__main__":
    main(sys.argv)
