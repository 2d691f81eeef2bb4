#!/usr/bin/env python3
"""Builds the terminology maps the GP-system adapters add SNOMED CT and dm+d codings from
(profiles/data/maps/*.csv), out of the published code lists in ../shared/data/codelists. Run from
the repository root:

    python3 scripts/build-maps.py ../shared/data/codelists

Maps built (every pair comes from a published list; nothing is inferred):

- `readv2-snomed`: Read v2 code (5-byte code and 2-digit term id) -> SNOMED CT concept, from the
  CPRD Aurum medical code lists, whose rows pair an entry's original Read v2 code with the SNOMED
  CT concept EMIS Web recorded for it. Rows whose original code is an EMIS local code (`EMIS...`)
  or not Read v2 shaped are left out.
- `emis-snomed`: EMIS code id (CPRD Aurum `MedCodeId`) -> SNOMED CT concept, from the same rows.
- `emis-dmd`: EMIS product code id (CPRD Aurum `ProdCodeId`) -> dm+d, from the Aurum product lists.
- `gemscript-dmd`: Gemscript product code -> dm+d, from the CPRD GOLD (Vision) product lists.

No CTV3 -> SNOMED CT pairs are in the shared lists, so there is no CTV3 map: CTV3 codes are carried
and flagged unmapped. Each output file is `#` header lines (map, from, to, version, built from),
then `from,to` rows (readv2-snomed: `code,term_id,snomed`), sorted, without repeats. The version is
the first 12 hex digits of SHA-256 over every map's rows, so it changes exactly when a pair does.
"""
import csv
import hashlib
import os
import re
import sys

AURUM_MEDICAL = [
    "healthconditions/anxiety/anxietyAurum.txt",
    "healthconditions/depression/depressionAurum.txt",
    "healthconditions/Diabetes/diabTestsA.txt",
    "healthconditions/multimorbidity/AurumCharlson.txt",
    "healthconditions/multimorbidity/AurumElixhauser.txt",
]
AURUM_PRODUCTS = [
    "medications/zdrugs/zdrugsA.txt",
    "medications/opioids/opioidCodesA.txt",
    "medications/anxiolytics/anxiA.txt",
]
GOLD_PRODUCTS = [
    "medications/zdrugs/zdrugsG.txt",
    "medications/opioids/opioidCodesG.txt",
    "medications/anxiolytics/anxiG.txt",
]
CPRD = "cprd-gold-read2_aurum-snomed_dmd"
LICENCE = ("derived from the Pharmacoepi Data Collaborative CPRD code lists "
           "(github.com/Pharmacoepi-Data-Collaborative/home @ 166fef4, MIT code and CC BY 4.0 "
           "documentation; changes: pairs extracted and de-duplicated); SNOMED CT and dm+d content "
           "under their own licences (UK SNOMED CT affiliate licence, NHSBSA dm+d terms)")
# A Read v2 code is five characters from [A-Za-z0-9.], dots only as trailing padding.
READ_V2 = re.compile(r"^[A-Za-z0-9][A-Za-z0-9]{0,4}\.*$")
TERM_ID = re.compile(r"^[0-9]{2}$")
DIGITS = re.compile(r"^[0-9]{6,18}$")


def rows(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        first = f.readline()
        f.seek(0)
        delimiter = "\t" if "\t" in first else ","
        for row in csv.DictReader(f, delimiter=delimiter):
            yield {(k or "").strip().strip('"').lower(): (v or "").strip().strip('"') for k, v in row.items()}


def cleansed_read(row):
    """The 7-character Read v2 form (code + term id) of an Aurum row, if it has one."""
    for column in ("cleansedreadcode", "readcode"):
        value = row.get(column, "")
        if len(value) == 7 and READ_V2.match(value[:5]) and TERM_ID.match(value[5:]):
            return value[:5], value[5:]
    return None


def main():
    root = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/codelists", CPRD)
    out = os.path.join(os.path.dirname(__file__), "..", "profiles", "data", "maps")
    os.makedirs(out, exist_ok=True)
    read_pairs, emis_pairs, emis_dmd, gemscript_dmd = set(), set(), set(), set()
    for rel in AURUM_MEDICAL:
        for row in rows(os.path.join(root, rel)):
            snomed = row.get("snomedctconceptid", "")
            medcode = row.get("medcodeid", "")
            if not DIGITS.match(snomed):
                continue
            if DIGITS.match(medcode):
                emis_pairs.add((medcode, snomed))
            original = row.get("originalreadcode", "")
            read = cleansed_read(row)
            if read and not original.upper().startswith("EMIS"):
                read_pairs.add((read[0], read[1], snomed))
    for rel in AURUM_PRODUCTS:
        for row in rows(os.path.join(root, rel)):
            prod, dmd = row.get("prodcodeid", ""), row.get("dmdid", "")
            if DIGITS.match(prod) and DIGITS.match(dmd):
                emis_dmd.add((prod, dmd))
    for rel in GOLD_PRODUCTS:
        for row in rows(os.path.join(root, rel)):
            gem, dmd = row.get("gemscriptcode", ""), row.get("dmdcode", "")
            if re.match(r"^[0-9]{8}$", gem) and DIGITS.match(dmd):
                gemscript_dmd.add((gem, dmd))
    # A key that published lists pair with two different targets is ambiguous: it is left out,
    # never resolved by picking one.
    def unambiguous(pairs, key_len):
        targets = {}
        for pair in pairs:
            targets.setdefault(pair[:key_len], set()).add(pair[key_len:])
        dropped = sorted(k for k, t in targets.items() if len(t) > 1)
        if dropped:
            print(f"left out {len(dropped)} ambiguous key(s): {', '.join(','.join(k) for k in dropped[:5])}")
        return {p for p in pairs if len(targets[p[:key_len]]) == 1}

    read_pairs = unambiguous(read_pairs, 2)
    emis_pairs = unambiguous(emis_pairs, 1)
    emis_dmd = unambiguous(emis_dmd, 1)
    gemscript_dmd = unambiguous(gemscript_dmd, 1)
    maps = [
        ("readv2-snomed", "Read v2 (code, term id)", "SNOMED CT", "code,term_id,snomed",
         sorted(read_pairs), AURUM_MEDICAL),
        ("emis-snomed", "EMIS code id (CPRD Aurum MedCodeId)", "SNOMED CT", "emis,snomed",
         sorted(emis_pairs), AURUM_MEDICAL),
        ("emis-dmd", "EMIS product code id (CPRD Aurum ProdCodeId)", "dm+d", "emis,dmd",
         sorted(emis_dmd), AURUM_PRODUCTS),
        ("gemscript-dmd", "Gemscript product code (CPRD GOLD gemscriptcode)", "dm+d", "gemscript,dmd",
         sorted(gemscript_dmd), GOLD_PRODUCTS),
    ]
    digest = hashlib.sha256()
    for name, _, _, _, pairs, _ in maps:
        digest.update(name.encode())
        for pair in pairs:
            digest.update((",".join(pair) + "\n").encode())
    version = digest.hexdigest()[:12]
    for name, source, target, columns, pairs, inputs in maps:
        with open(os.path.join(out, f"{name}.csv"), "w", encoding="utf-8") as f:
            f.write(f"# map: {name}\n# from: {source}\n# to: {target}\n# version: {version}\n")
            for rel in inputs:
                f.write(f"# built from: codelists/{CPRD}/{rel}\n")
            f.write(f"# licence: {LICENCE}\n")
            f.write(columns + "\n")
            for pair in pairs:
                f.write(",".join(pair) + "\n")
        print(f"{name}: {len(pairs)} pairs")
    print(f"version: {version}")


if __name__ == "__main__":
    main()
