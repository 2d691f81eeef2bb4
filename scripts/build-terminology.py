#!/usr/bin/env python3
"""Builds the code sets the sharing agreements classify on (policy/terminology/*.csv) from the
published code lists in ../shared/data/codelists, plus the few hand-picked codes listed below
where no published list was at hand. Run from the repository root:

    python3 scripts/build-terminology.py ../shared/data/codelists

Each output file starts with `#` header lines (set name, kind, version, what it was built
from), then `system,code` rows, sorted, without repeats. The gateway embeds these files; rerun
this script and commit its output to change a set (the version line changes with the date).
"""
import csv
import re
import datetime
import os
import sys

SNOMED = "http://snomed.info/sct"
READ_V2 = "http://read.info/readv2"
CTV3 = "http://read.info/ctv3"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
DMD = "https://dmd.nhs.uk"

# Hand-picked codes, used only where no published list was available here. Each is a
# well-known SNOMED CT concept; see policy/terminology/README.md for what is known missing.
HAND_PICKED = {
    "sexually-transmitted-infection": [
        (SNOMED, "8098009"),    # Sexually transmitted infectious disease
        (SNOMED, "76272004"),   # Syphilis
        (SNOMED, "15628003"),   # Gonorrhoea
        (SNOMED, "105629000"),  # Chlamydial infection
        (SNOMED, "33839006"),   # Genital herpes simplex
        (SNOMED, "240589008"),  # Chlamydia trachomatis infection
    ],
    "assisted-conception": [
        (SNOMED, "52637005"),   # In vitro fertilisation
        (SNOMED, "63487001"),   # Artificial insemination
    ],
    "gender-reassignment": [
        (SNOMED, "407377005"),  # Female-to-male transsexual
        (SNOMED, "407376001"),  # Male-to-female transsexual
    ],
    "feet-and-legs": [
        (SNOMED, "56459004"),   # Foot structure (body site)
        (SNOMED, "30021000"),   # Lower leg structure (body site)
        (SNOMED, "61685007"),   # Lower limb structure (body site)
        (SNOMED, "400200009"),  # Ingrowing nail
        (SNOMED, "371087003"),  # Diabetic foot ulcer
    ],
    "circulation": [
        (SNOMED, "400047006"),  # Peripheral vascular disease
        (SNOMED, "128053003"),  # Deep venous thrombosis
    ],
    "diabetes-care": [
        (SNOMED, "325278000"),        # Metformin 500mg tablets (dm+d coded as the simulator does)
        (DMD, "325278000"),
        (SNOMED, "1107481000000106"), # Haemoglobin A1c level
    ],
    "mental-health-medicines": [
        (DMD, "321968002"),           # Sertraline 50mg tablets
    ],
}

# (set, kind, [(relative path, reader)])
def snomed_col(col):
    return lambda row: [(SNOMED, row[col].strip())]

def ctv3_col(col):
    return lambda row: [(CTV3, row[col].strip())]

def read2_col(col):
    # Read v2 is written as its 5-byte code; the 7-character form adds a 2-digit term id.
    return lambda row: [(READ_V2, row[col].strip()[:5])] if row.get(col, "").strip() else []

def icd10_col(col):
    return lambda row: [(ICD10, row[col].strip())]

def active_only(reader):
    return lambda row: reader(row) if row.get("active", "y").strip() == "y" else []

def where(column, values, reader):
    """Only the rows whose `column` is one of `values` (the CPRD multimorbidity lists hold every
    condition of an index in one file, named in their `condition` column)."""
    return lambda row: reader(row) if row.get(column, "").strip() in values else []

def term_matches(column, pattern, reader):
    """Only the rows whose term matches `pattern` (case-insensitive): a published list narrowed
    by what its own terms say, not by hand-picked codes."""
    rx = re.compile(pattern, re.IGNORECASE)
    return lambda row: reader(row) if rx.search(row.get(column, "")) else []

def read2_mapped_to(snomed_list):
    """The Read v2 codes CPRD Aurum files beside a SNOMED CT concept of `snomed_list` (a relative
    path; its `code` column): a published Read v2 <-> SNOMED pairing, so a Read v2-coded record
    lands in the same set as the refset's SNOMED concepts."""
    wanted = {}

    def reader(row):
        if not wanted:
            wanted["codes"] = {r["code"].strip() for r in read_rows(os.path.join(ROOT, snomed_list))}
        if row.get("snomedctconceptid", "").strip() in wanted["codes"]:
            return read2_col("readcode")(row)
        return []
    return reader

PCD = "opensafely-snomed-pcd-refsets/nhsd-primary-care-domain-refsets-"
MULTI = "cprd-gold-read2_aurum-snomed_dmd/healthconditions/multimorbidity/"
HYPERTENSION = ("Hypertension (uncomplicated)", "Hypertension with end-organ damage")
SENS = "sensitive/"
SETS = [
    ("hiv", "sensitive", [
        (SENS + "antibody-and-antiviral-deployment/opensafely-hiv-snomed.csv", active_only(snomed_col("id"))),
        (SENS + "antibody-and-antiviral-deployment/nhsd-hiv-aids-snomed.csv", snomed_col("code")),
        (SENS + "antibody-and-antiviral-deployment/nhsd-hiv-aids-icd10.csv", icd10_col("code")),
        (SENS + "risk-factors-research/opensafely-hiv.csv", ctv3_col("ctv3id")),
        ("opensafely-ctv3-tpp/opensafely-hiv.csv", ctv3_col("ctv3id")),
        (PCD + "human-immunodeficiency-virus-hiv-codes.csv", snomed_col("code")),
    ]),
    ("termination-of-pregnancy", "sensitive", [
        (SENS + "uom_pregnancy_tx_pathways/user-VickiPalin-pregnancy_top_snomed.csv", snomed_col("code")),
        (SENS + "uom_pregnancy_tx_pathways/user-VickiPalin-pregnancy_top-probable_snomed.csv", snomed_col("code")),
    ]),
    ("sexually-transmitted-infection", "sensitive", []),
    ("assisted-conception", "sensitive", []),
    ("gender-reassignment", "sensitive", []),
    ("substance-misuse", "clinical", [
        (SENS + "disparities-comparison/nhsd-primary-care-domain-refsets-illsub_cod.csv", snomed_col("code")),
        (SENS + "disparities-comparison/nhsd-primary-care-domain-refsets-illsubassdec_cod.csv", snomed_col("code")),
        (SENS + "disparities-comparison/nhsd-primary-care-domain-refsets-illsubint_cod.csv", snomed_col("code")),
        (SENS + "disparities-comparison/user-angel-wong-hazardous-drinking.csv", snomed_col("code")),
    ]),
    ("diabetes", "clinical", [
        (PCD + "dmtype1audit_cod.csv", snomed_col("code")),
        (PCD + "dmtype2audit_cod.csv", snomed_col("code")),
        (PCD + "dmres_cod.csv", snomed_col("code")),
        ("opensafely-ctv3-tpp/opensafely-diabetes.csv", ctv3_col("ctv3id")),
        ("cprd-gold-read2_aurum-snomed_dmd/healthconditions/Diabetes/ALLDIABETESCODES.txt", read2_col("readcode")),
    ]),
    ("diabetes-care", "clinical", []),
    ("arthritis", "clinical", [
        (PCD + "rheumatoid-arthritis-disorders.csv", snomed_col("code")),
        ("opensafely-ctv3-tpp/opensafely-ra-sle-psoriasis.csv", ctv3_col("ctv3id")),
    ]),
    ("circulation", "clinical", [
        (PCD + "chd_cod.csv", snomed_col("code")),
    ]),
    ("feet-and-legs", "clinical", []),
    ("mental-health", "clinical", [
        (PCD + "depr_cod.csv", snomed_col("code")),
        (PCD + "dem_cod.csv", snomed_col("code")),
        ("cprd-gold-read2_aurum-snomed_dmd/healthconditions/depression/depressionAurum.txt", snomed_col("snomedctconceptid")),
        ("cprd-gold-read2_aurum-snomed_dmd/healthconditions/depression/depressionGold.txt", read2_col("readcode")),
        ("cprd-gold-read2_aurum-snomed_dmd/healthconditions/anxiety/anxietyAurum.txt", snomed_col("snomedctconceptid")),
        ("cprd-gold-read2_aurum-snomed_dmd/healthconditions/anxiety/anxietyGold.txt", read2_col("readcode")),
        ("opensafely-ctv3-tpp/opensafely-dementia.csv", ctv3_col("ctv3id")),
    ]),
    ("mental-health-medicines", "clinical", []),
    # Measure sets for the London-wide dashboards (issue 11).
    ("asthma", "clinical", [
        (PCD + "ast_cod.csv", snomed_col("code")),
        ("opensafely-ctv3-tpp/opensafely-asthma-diagnosis.csv", ctv3_col("ctv3id")),
        (MULTI + "AurumElixhauser.txt", read2_mapped_to(PCD + "ast_cod.csv")),
    ]),
    ("copd", "clinical", [
        (PCD + "copd_cod.csv", snomed_col("code")),
        (MULTI + "AurumElixhauser.txt", read2_mapped_to(PCD + "copd_cod.csv")),
        # The OpenSAFELY chronic respiratory list also holds bronchiectasis, alveolitis and more:
        # only its rows whose preferred term names chronic obstructive disease are COPD.
        ("opensafely-ctv3-tpp/opensafely-chronic-respiratory-disease.csv",
         term_matches("ctv3preferredtermdesc", r"chron\w* obstruct|obstructive chronic bronchitis", ctv3_col("ctv3id"))),
    ]),
    ("hypertension", "clinical", [
        ("opensafely-ctv3-tpp/opensafely-hypertension.csv", ctv3_col("ctv3id")),
        (MULTI + "AurumElixhauser.txt", where("condition", HYPERTENSION, snomed_col("snomedctconceptid"))),
        (MULTI + "AurumElixhauser.txt", where("condition", HYPERTENSION, read2_col("readcode"))),
        (MULTI + "GoldElixhauser.txt", where("condition", HYPERTENSION, read2_col("readcode"))),
    ]),
]


def read_rows(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        sample = f.read(4096)
        f.seek(0)
        delimiter = "\t" if "\t" in sample.splitlines()[0] else ","
        for row in csv.DictReader(f, delimiter=delimiter):
            # Column names differ in case between lists (SnomedCTConceptId, snomedctconceptid).
            yield {(k or "").strip().lower(): (v or "") for k, v in row.items()}


ROOT = "../shared/data/codelists"


def main():
    global ROOT
    root = ROOT = sys.argv[1] if len(sys.argv) > 1 else ROOT
    out = os.path.join(os.path.dirname(__file__), "..", "policy", "terminology")
    version = datetime.date.today().isoformat()
    for name, kind, inputs in SETS:
        codes = set(HAND_PICKED.get(name, []))
        built_from = []
        for rel, reader in inputs:
            path = os.path.join(root, rel)
            for row in read_rows(path):
                for system, code in reader(row):
                    if code and code not in ("0",):
                        codes.add((system, code))
            if rel not in built_from:
                built_from.append(rel)
        if name in HAND_PICKED:
            built_from.append("hand-picked codes (scripts/build-terminology.py)")
        with open(os.path.join(out, f"{name}.csv"), "w", encoding="utf-8") as f:
            f.write(f"# set: {name}\n# kind: {kind}\n# version: {version}\n")
            for b in built_from:
                f.write(f"# built from: {b}\n")
            f.write("system,code\n")
            for system, code in sorted(codes):
                f.write(f"{system},{code}\n")
        print(f"{name}: {len(codes)} codes")


if __name__ == "__main__":
    main()
