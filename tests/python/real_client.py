"""A real FHIR client someone else wrote (PyPI fhirpy, sync API) against a running Tideway demo.

Usage: python real_client.py READY_FILE   (the JSON `tideway demo --ready-file` writes)

Each check is counted; the last line is `fhirpy: N passed, M failed` and the exit status is
non-zero when any check failed. scripts/real-client.sh installs the pinned fhirpy, runs this
beside the other clients' scripts and adds up their summaries.
"""

import json

from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, OperationOutcome

from real_client_common import (
    NHS_SYSTEM,
    Checks,
    check_include_pages,
    choose_patient,
)

PAGE = 5
MAX_PAGES = 200

checks = Checks("fhirpy")
check = checks.run


def follow(client, bundle, what):
    """Yields `bundle` and every page after it through `next` links, bounded."""
    pages = 0
    while bundle is not None:
        assert bundle["resourceType"] == "Bundle", f"{what}: not a Bundle"
        yield bundle
        pages += 1
        assert pages <= MAX_PAGES, f"{what}: more than {MAX_PAGES} pages"
        nxt = [link["url"] for link in bundle.get("link", []) if link.get("relation") == "next"]
        assert len(nxt) <= 1, f"{what}: several next links"
        # fhirpy refuses (ValueError) a link outside the client's base URL.
        bundle = client.execute(nxt[0], method="get") if nxt else None


def main(ready_path):
    with open(ready_path, encoding="utf-8") as f:
        ready = json.load(f)
    base = ready["base_url"].rstrip("/")
    client = SyncFHIRClient(
        base, authorization=f"Bearer {ready['token']}", requests_config={"timeout": 30}
    )
    anonymous = SyncFHIRClient(base, requests_config={"timeout": 30})
    state = {}

    def metadata():
        cap = anonymous.execute("metadata", method="get")
        assert cap["resourceType"] == "CapabilityStatement"
        assert cap["fhirVersion"] == "4.0.1", cap["fhirVersion"]

    check("metadata is an R4 4.0.1 CapabilityStatement", metadata)

    def search_each():
        ids = {}
        for nhs in ready["nhs_numbers"]:
            found = client.resources("Patient").search(identifier=f"{NHS_SYSTEM}|{nhs}").fetch()
            assert len(found) == 1, f"{len(found)} patients for one NHS number"
            ids[nhs] = found[0].id
        assert len(set(ids.values())) == len(ids), "distinct NHS numbers gave the same id"
        state["ids"] = ids

    if not check("Patient search by NHS number identifier finds one Patient each", search_each):
        return

    def find_id(nhs):
        if nhs in state["ids"]:
            return state["ids"][nhs]
        found = client.resources("Patient").search(identifier=f"{NHS_SYSTEM}|{nhs}").fetch()
        assert len(found) == 1, f"{len(found)} patients for one NHS number"
        return found[0].id

    def fetch_everything(pid):
        first = client.resource("Patient", id=pid).execute("$everything", method="get", params={"_count": 50})
        return list(follow(client, first, "$everything"))

    def pages_at_page_size(record):
        # The paging check below needs a record longer than one page.
        return [] if record.total > PAGE else [f"total {record.total}, one page at _count={PAGE}"]

    def choose():
        state["nhs"], state["record"] = choose_patient(ready, find_id, fetch_everything, pages_at_page_size)

    if not check("a patient whose $everything can exercise every check", choose):
        return
    nhs = state["nhs"]
    record = state["record"]
    pid = record.pid

    def read():
        patient = client.reference("Patient", pid).to_resource()
        assert patient.resourceType == "Patient" and patient.id == pid
        systems = {(i.get("system"), i.get("value")) for i in patient.get("identifier", [])}
        assert (NHS_SYSTEM, nhs) in systems, "read Patient lacks its NHS number identifier"
        # The same read through fhirpy's other path.
        assert client.get("Patient", pid)["id"] == pid

    check("Patient read by id", read)

    def everything():
        first = client.resource("Patient", id=pid).execute(
            "$everything", method="get", params={"_count": PAGE}
        )
        total = first["total"]
        assert isinstance(total, int) and total > PAGE, f"total {total}: too small to page"
        seen, pages, sources, types, ids = 0, 0, set(), {}, set()
        state["resources"] = []
        for page in follow(client, first, "$everything"):
            pages += 1
            assert page["total"] == total, "total changed between pages"
            # Every clinical page carries one outcome entry saying information may be withheld
            # (the same whether or not anything was); it is not a result, so _count leaves it out.
            outcomes = [e for e in page.get("entry", []) if e.get("search", {}).get("mode") == "outcome"]
            assert len(outcomes) == 1, f"{len(outcomes)} outcome entries on a page"
            assert any(i.get("code") == "suppressed" for i in outcomes[0]["resource"]["issue"]), "no withheld notice"
            entry = [e for e in page.get("entry", []) if e.get("search", {}).get("mode") != "outcome"]
            # `_count` and `total` count matches; the gateway's Provenance for merged facts rides
            # along as search.mode = include, on the page of the fact it is about.
            matches = [e["resource"] for e in entry if e.get("search", {}).get("mode") == "match"]
            assert len(matches) <= PAGE, f"page of {len(matches)} matches with _count={PAGE}"
            on_page = {f"{r['resourceType']}/{r['id']}" for r in matches}
            for e in entry:
                r = e["resource"]
                if e.get("search", {}).get("mode") == "match":
                    seen += 1
                else:
                    assert r["resourceType"] == "Provenance", f"a {r['resourceType']} included"
                    targets = {t.get("reference") for t in r.get("target", [])}
                    assert targets & on_page, "an included Provenance is for nothing on its page"
                key = (r["resourceType"], r["id"])
                assert key not in ids, f"{key} on two pages"
                ids.add(key)
                types[r["resourceType"]] = types.get(r["resourceType"], 0) + 1
                state["resources"].append(r)
                sources.add(r.get("meta", {}).get("source"))
        assert seen == total, f"{seen} entries across {pages} pages, total says {total}"
        assert pages == -(-total // PAGE), f"{pages} pages for {total} matches at {PAGE} a page"
        assert types.get("Patient") == 1, f"{types.get('Patient')} Patients in $everything"
        # The same record as the one fetched 50 a page to choose the patient.
        assert total == record.total, (total, record.total)
        assert ids == {(r["resourceType"], r["id"]) for r in record.resources}, "paged at 5 or 50, not the same record"
        # Entries name their borough; entries the gateway made itself (e.g. the Provenance of
        # a merge) name the gateway.
        boroughs = {s for s in sources if s and s.startswith("urn:tideway:source:")}
        assert len(boroughs) >= 2, f"entries from fewer than 2 sources: {sources}"
        assert sources <= boroughs | {"urn:tideway:gateway"}, f"unexpected meta.source: {sources}"
        state["types"] = types

    check(f"$everything with _count={PAGE}, next links followed to the end", everything)

    def typed_search_paging():
        types = state["types"]
        rtype = max((t for t in types if t != "Patient"), key=lambda t: types[t])
        assert types[rtype] > PAGE, f"no type has more than {PAGE} entries: {types}"
        search = client.resources(rtype).search(patient=pid).limit(PAGE)
        first = search.fetch_raw()
        # fhirpy's own iteration follows the next links.
        everything = [r for r in search.fetch_all() if r.resourceType == rtype]
        assert len(everything) == first["total"], (len(everything), first["total"])
        assert len(everything) == types[rtype], (rtype, len(everything), types[rtype])
        assert len({r.id for r in everything}) == len(everything), "duplicates across pages"

    check("typed search paged by fhirpy's fetch_all adds up", typed_search_paging)

    def of_type(rtype):
        return [r for r in state["resources"] if r["resourceType"] == rtype]

    def code_search():
        conditions = of_type("Condition")
        assert conditions, "no conditions to search"
        coding = conditions[0]["code"]["coding"][0]
        token = f"{coding['system']}|{coding['code']}"
        want = sorted(
            r["id"] for r in conditions
            if any(c.get("system") == coding["system"] and c.get("code") == coding["code"] for c in r["code"]["coding"])
        )
        got = sorted(r.id for r in client.resources("Condition").search(patient=pid, code=token).fetch_all())
        assert got == want, (got, want)

    check("code search (system|code) finds exactly the matching conditions", code_search)

    def date_search_and_sort():
        obs = [r for r in of_type("Observation") if "effectiveDateTime" in r]
        assert obs, "no dated observations"
        days = sorted(r["effectiveDateTime"][:10] for r in obs)
        middle = days[len(days) // 2]
        want = sorted(r["id"] for r in obs if r["effectiveDateTime"][:10] >= middle)
        got = client.resources("Observation").search(patient=pid, date=f"ge{middle}").fetch_all()
        assert sorted(r.id for r in got) == want, (len(got), len(want))
        newest_first = client.resources("Observation").search(patient=pid).sort("-date").fetch_all()
        dated = [r["effectiveDateTime"][:10] for r in newest_first if "effectiveDateTime" in r]
        assert dated == sorted(dated, reverse=True), "_sort=-date is not newest first"

    check("date search with a prefix, and _sort=-date", date_search_and_sort)

    def summary_count():
        counted = client.execute("Condition", method="get", params={"patient": pid, "_summary": "count"})
        assert counted["total"] == len(of_type("Condition")), (counted["total"], len(of_type("Condition")))
        results = [e for e in counted.get("entry", []) if e.get("search", {}).get("mode") != "outcome"]
        assert not results, f"{len(results)} entries with _summary=count"

    check("_summary=count is the number of matches, without result entries", summary_count)

    def follow_reference():
        patient = client.reference("Patient", pid).to_resource()
        gp = patient["generalPractitioner"][0]["reference"]
        org = client.reference(reference=gp).to_resource()
        assert org.resourceType == "Organization" and f"Organization/{org.id}" == gp

    check("Patient.generalPractitioner can be followed", follow_reference)

    def follow_from_everything():
        reference, held = record.followable()
        # Read at the address the Encounter in $everything gives, not rebuilt from parts.
        got = client.reference(reference=reference).to_resource()
        assert f"{got.resourceType}/{got.id}" == reference, (got.resourceType, got.id)
        assert json.loads(json.dumps(got.serialize())) == held, "the read differs from the copy in $everything"

    check("Encounter.serviceProvider from $everything read at its address", follow_from_everything)

    def every_full_url():
        bundle = client.resource("Patient", id=pid).execute("$everything", method="get", params={"_count": 1000})
        bundle = json.loads(json.dumps(bundle))
        assert not [l for l in bundle.get("link", []) if l.get("relation") == "next"], "one page expected"
        entries = [e for e in bundle.get("entry", []) if e.get("search", {}).get("mode") != "outcome"]
        types = set()
        for e in entries:
            # fhirpy refuses a URL outside its base, so this also checks every fullUrl is under it.
            got = json.loads(json.dumps(client.execute(e["fullUrl"], method="get")))
            assert got == e["resource"], f"{e['resource']['resourceType']}: the read differs from the entry"
            types.add(got["resourceType"])
        for t in ("Patient", "Organization", "Condition", "Encounter"):
            assert t in types, f"no {t} among the {len(entries)} entries read"

    check("every fullUrl of $everything reads back the entry it names", every_full_url)

    def include_encounters():
        first = client.resources("Condition").search(patient=pid).include("Condition", "encounter").limit(1).fetch_raw()
        # fetch_raw turns the first page's resources into fhirpy resources; as JSON, the pages
        # are plain again.
        pages = [json.loads(json.dumps(p)) for p in follow(client, first, "_include")]
        assert len(pages) >= 2, "_count=1 did not page"
        check_include_pages(record, pages)

    check("_include=Condition:encounter brings exactly the referenced Encounters, page by page", include_encounters)

    def no_token():
        try:
            anonymous.resources("Patient").search(identifier=f"{NHS_SYSTEM}|{nhs}").fetch()
        except AuthorizationError:
            return
        raise AssertionError("a search without a token was answered")

    check("no token: 401 (fhirpy AuthorizationError)", no_token)

    def bad_nhs_number():
        try:
            client.resources("Patient").search(identifier=f"{NHS_SYSTEM}|1234567890").fetch()
        except OperationOutcome as e:
            issues = e.resource["issue"] if e.resource else []
            assert issues, "400 without an OperationOutcome issue"
            assert "1234567890" not in json.dumps(issues), "the outcome echoes the NHS number"
            return
        raise AssertionError("an invalid NHS number was accepted")

    check("invalid NHS number: an OperationOutcome (fhirpy OperationOutcome)", bad_nhs_number)


if __name__ == "__main__":
    checks.main(main, __doc__)
