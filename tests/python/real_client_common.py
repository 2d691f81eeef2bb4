"""What the Python real-client scripts share: counting checks, choosing a patient whose record
can exercise every search, and working out each search's expected answer from that patient's
`$everything`.

Nothing here talks to the server. Each script fetches with the client it puts to the test and
hands plain JSON (dicts) to these functions, so an expected answer never comes from the code
path it is meant to check.
"""

import sys
import traceback
from datetime import datetime, timezone

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


class Checks:
    """Runs named checks, prints `ok`/`FAIL` per check and one summary line for the shell."""

    def __init__(self, label):
        self.label = label
        self.passed = 0
        self.failed = 0

    def run(self, name, fn):
        """An exception or a false assertion is a failure, reported, never fatal."""
        try:
            fn()
        except Exception:  # noqa: BLE001 - every failure is reported the same way
            self.failed += 1
            print(f"FAIL {name}")
            traceback.print_exc(limit=3)
            return False
        self.passed += 1
        print(f"ok   {name}")
        return True

    def crashed(self):
        """Set-up failed before a check could count it; that is one failure."""
        traceback.print_exc()
        self.failed += 1

    def main(self, main, doc):
        """Runs `main(READY_FILE)` as a script (`doc` is the usage on a wrong command line), a
        crash in set-up counting as one failure, and exits with [`finish`]'s status."""
        if len(sys.argv) != 2:
            print(doc, file=sys.stderr)
            sys.exit(2)
        try:
            main(sys.argv[1])
        except Exception:  # noqa: BLE001 - set-up failed before any check could count it
            self.crashed()
        sys.exit(self.finish())

    def finish(self):
        """Prints `LABEL: N passed, M failed` (scripts/real-client.sh sums these) and returns
        the exit status: non-zero on any failure, or when nothing ran at all."""
        print(f"{self.label}: {self.passed} passed, {self.failed} failed")
        return 1 if self.failed or not self.passed else 0


def candidates(ready):
    """The ready file's NHS numbers worth trying, in order: the plain demo patients first, then
    the scenario patients (opted-out ones are left out: their records are withheld)."""
    opted_out = set(ready.get("opted_out", []))
    seen, out = set(), []
    for nhs in list(ready.get("nhs_numbers", [])) + list(ready.get("scenario_patients", {}).values()):
        if nhs not in seen and nhs not in opted_out:
            seen.add(nhs)
            out.append(nhs)
    return out


def instant(value):
    """A FHIR date or dateTime as an aware datetime at the start of the period it names (a value
    without a zone, which R4 allows only for dates, is taken as UTC)."""
    if len(value) == 4:
        value += "-01-01"
    elif len(value) == 7:
        value += "-01"
    t = datetime.fromisoformat(value)
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def everything_resources(pages):
    """The resources of a paged `$everything` and its total, given its pages as Bundle dicts:
    checks that the total holds on every page, that no resource comes twice and that the
    matches add up to the total. The outcome entry each page carries is not part of the record;
    included entries (the gateway's Provenance) are, though `total` does not count them."""
    total, seen, keys, resources = None, 0, set(), []
    for page in pages:
        assert page["resourceType"] == "Bundle", "$everything page is not a Bundle"
        if total is None:
            total = page["total"]
        assert page["total"] == total, "total changed between pages"
        for e in page.get("entry", []):
            mode = e.get("search", {}).get("mode")
            if mode == "outcome":
                continue
            r = e["resource"]
            key = (r["resourceType"], r["id"])
            assert key not in keys, f"{key} on two pages"
            keys.add(key)
            resources.append(r)
            if mode == "match":
                seen += 1
    assert total is not None, "$everything gave no page"
    assert seen == total, f"{seen} matches across pages, total says {total}"
    return resources, total


def codings(resource):
    return [
        (c["system"], c["code"])
        for c in resource.get("code", {}).get("coding", [])
        if c.get("system") and c.get("code")
    ]


class Record:
    """One patient's `$everything`, as plain resources, and the expected answers it implies."""

    def __init__(self, pid, resources, total):
        self.pid = pid
        self.resources = resources
        self.total = total

    def of_type(self, rtype):
        return [r for r in self.resources if r["resourceType"] == rtype]

    def addresses(self, rtype):
        return {f"{rtype}/{r['id']}" for r in self.of_type(rtype)}

    def code_probe(self):
        """A coding some but not all Conditions carry, as (system, code, ids carrying it): a
        server that ignored the code would then answer too much."""
        conditions = self.of_type("Condition")
        for system, code in (sc for r in conditions for sc in codings(r)):
            want = sorted(r["id"] for r in conditions if (system, code) in codings(r))
            if 0 < len(want) < len(conditions):
                return system, code, want
        return None

    def dated_observations(self):
        return [r for r in self.of_type("Observation") if "effectiveDateTime" in r]

    def year_probe(self):
        """A year that splits the dated Observations, as (year, ids dated in or after it): the
        middle one of the distinct years, never the earliest, so `ge` must leave some out."""
        dated = self.dated_observations()
        years = sorted({instant(r["effectiveDateTime"]).astimezone(timezone.utc).year for r in dated})
        if len(years) < 2:
            return None
        year = years[len(years) // 2]
        start = datetime(year, 1, 1, tzinfo=timezone.utc)
        want = sorted(r["id"] for r in dated if instant(r["effectiveDateTime"]) >= start)
        return year, want

    def encounters_referenced(self, conditions):
        """The Encounters `_include=Condition:encounter` should bring for these Conditions: the
        ones they reference that the record holds (anything else is withheld or absent)."""
        held = self.addresses("Encounter")
        refs = {c.get("encounter", {}).get("reference") for c in conditions}
        return refs & held

    def followable(self):
        """A reference from a clinical resource in the record to an Organization the record also
        holds, as (reference, the record's copy): an Encounter's serviceProvider."""
        orgs = {f"Organization/{r['id']}": r for r in self.of_type("Organization")}
        for enc in self.of_type("Encounter"):
            ref = enc.get("serviceProvider", {}).get("reference")
            if ref in orgs:
                return ref, orgs[ref]
        return None

    def shortfalls(self):
        """Why this record cannot exercise every check (empty when it can)."""
        out = []
        conditions = self.of_type("Condition")
        if len(conditions) < 2:
            out.append(f"{len(conditions)} Conditions")
        if len(self.of_type("Encounter")) < 2:
            out.append(f"{len(self.of_type('Encounter'))} Encounters")
        if not self.encounters_referenced(conditions):
            out.append("no Condition references an Encounter the record holds")
        if self.code_probe() is None:
            out.append("no coding that some but not all Conditions carry")
        if self.year_probe() is None:
            out.append("dated Observations span fewer than 2 years")
        if self.followable() is None:
            out.append("no Encounter.serviceProvider to an Organization in the record")
        return out


def choose_patient(ready, find_id, fetch_everything, also=None):
    """The first patient in the ready file whose record can exercise every check, as
    (NHS number, Record). `find_id(nhs)` and `fetch_everything(pid)` (a list of page dicts) are
    the script's own client calls; `also(record)` may add shortfalls of its own. Fails naming
    each candidate's shortfalls by position only, never by NHS number."""
    notes = []
    for i, nhs in enumerate(candidates(ready)):
        try:
            pid = find_id(nhs)
            record = Record(pid, *everything_resources(fetch_everything(pid)))
            short = record.shortfalls() + (also(record) if also else [])
        except Exception as e:  # noqa: BLE001 - a candidate that cannot be read is not chosen
            short = [f"could not be read ({type(e).__name__})"]
        if not short:
            return nhs, record
        notes.append(f"candidate {i}: " + ", ".join(short))
    raise AssertionError("no patient in the ready file can exercise every check: " + "; ".join(notes))


def check_include_pages(record, pages):
    """Checks the pages of `Condition?patient=..&_include=Condition:encounter` (Bundle dicts)
    against the record: the matches are exactly the record's Conditions and `total` counts only
    them; each page's Encounter includes are exactly those its own matches reference (held by
    the record); the only other includes are the gateway's Provenance for matches on that page."""
    conditions = {r["id"]: r for r in record.of_type("Condition")}
    matched, included, total = [], set(), None
    for page in pages:
        if total is None:
            total = page["total"]
        assert page["total"] == total, "total changed between pages"
        entries = page.get("entry", [])
        matches = [e["resource"] for e in entries if e.get("search", {}).get("mode") == "match"]
        includes = [e["resource"] for e in entries if e.get("search", {}).get("mode") == "include"]
        assert all(r["resourceType"] == "Condition" for r in matches), "a match is not a Condition"
        page_encounters = {f"Encounter/{r['id']}" for r in includes if r["resourceType"] == "Encounter"}
        want = record.encounters_referenced(matches)
        assert page_encounters == want, (sorted(page_encounters), sorted(want))
        on_page = {f"Condition/{r['id']}" for r in matches}
        for r in includes:
            if r["resourceType"] == "Encounter":
                continue
            assert r["resourceType"] == "Provenance", f"a {r['resourceType']} included"
            targets = {t.get("reference") for t in r.get("target", [])}
            assert targets & on_page, "an included Provenance is for nothing on its page"
        matched += [r["id"] for r in matches]
        included |= page_encounters
    assert total == len(conditions), f"total {total}, the record holds {len(conditions)} Conditions"
    assert sorted(matched) == sorted(conditions), (sorted(matched), sorted(conditions))
    want_all = record.encounters_referenced(list(conditions.values()))
    assert want_all and included == want_all, (sorted(included), sorted(want_all))


def check_sorted_by_date(record, observations, newest_first):
    """`observations` (dicts, in the order the server gave) are the record's Observations, with
    the dated ones in date order, newest or oldest first."""
    want_ids = sorted(r["id"] for r in record.of_type("Observation"))
    assert sorted(r["id"] for r in observations) == want_ids, "not the record's Observations"
    got = [instant(r["effectiveDateTime"]) for r in observations if "effectiveDateTime" in r]
    want = sorted((instant(r["effectiveDateTime"]) for r in record.dated_observations()), reverse=newest_first)
    assert len(set(want)) >= 2, "fewer than 2 distinct dates: the order would prove nothing"
    assert got == want, "not in date order" + (" (newest first)" if newest_first else " (oldest first)")
