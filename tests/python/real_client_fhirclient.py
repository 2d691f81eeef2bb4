"""A second real FHIR client (PyPI fhirclient, SMART on FHIR's Python client) against a running
Tideway demo. Every Bundle and resource goes through fhirclient's R4 model classes, which parse
strictly: an element the models do not know, or a value of the wrong type, fails the check.

Usage: python real_client_fhirclient.py READY_FILE   (the JSON `tideway demo --ready-file` writes)

The last line is `fhirclient: N passed, M failed`; the exit status is non-zero when any check
failed. scripts/real-client.sh installs the pinned fhirclient and runs this.
"""

import json

from fhirclient.client import FHIRClient
from fhirclient.models.bundle import Bundle
from fhirclient.models.condition import Condition
from fhirclient.models.observation import Observation
from fhirclient.models.organization import Organization
from fhirclient.models.patient import Patient

from real_client_common import (
    NHS_SYSTEM,
    Checks,
    check_include_pages,
    check_sorted_by_date,
    choose_patient,
)

MAX_PAGES = 200

checks = Checks("fhirclient")
check = checks.run


def connect(ready):
    """fhirclient's server object, signing every request with the demo's access token. The
    client has no option for a token obtained elsewhere; it takes one as saved OAuth2 state,
    the form it restores a finished authorisation from."""
    state = {
        "app_id": "tideway-real-client",
        "server": {
            "base_uri": ready["base_url"],
            "auth_type": "oauth2",
            "auth": {"app_id": "tideway-real-client", "access_token": ready["token"]},
        },
    }
    server = FHIRClient(state=state).server
    assert server.auth is not None and server.auth.can_sign_headers(), "fhirclient holds no token"
    return server


def pages_of(search, server):
    """The pages of a search as plain JSON. fhirclient's perform_iter follows the next links;
    each page was parsed into its Bundle model (strictly) on the way."""
    pages = []
    for bundle in search.perform_iter(server):
        pages.append(bundle.as_json())
        assert len(pages) <= MAX_PAGES, f"more than {MAX_PAGES} pages"
    return pages


def matches(pages, rtype):
    out = []
    for page in pages:
        for e in page.get("entry", []):
            if e.get("search", {}).get("mode") == "match":
                assert e["resource"]["resourceType"] == rtype, f"a {e['resource']['resourceType']} matched"
                out.append(e["resource"])
    return out


def main(ready_path):
    with open(ready_path, encoding="utf-8") as f:
        ready = json.load(f)
    server = connect(ready)
    state = {}

    def find_id(nhs):
        found = matches(pages_of(Patient.where(struct={"identifier": f"{NHS_SYSTEM}|{nhs}"}), server), "Patient")
        assert len(found) == 1, f"{len(found)} patients for one NHS number"
        return found[0]["id"]

    def fetch_everything(pid):
        # fhirclient has no call for operations; Bundle.read_from is its read of a path, and
        # the next links are followed the same way.
        pages = []
        bundle = Bundle.read_from(f"Patient/{pid}/$everything?_count=20", server)
        while bundle is not None:
            pages.append(bundle.as_json())
            assert len(pages) <= MAX_PAGES, f"more than {MAX_PAGES} pages"
            nxt = [link.url for link in bundle.link or [] if link.relation == "next"]
            bundle = Bundle.read_from(nxt[0], server) if nxt else None
        return pages

    def choose():
        state["nhs"], state["record"] = choose_patient(ready, find_id, fetch_everything)

    if not check("a patient whose $everything (read through Bundle models) can exercise every check", choose):
        return
    record = state["record"]
    pid = record.pid

    def code_search():
        system, code, want = record.code_probe()
        search = Condition.where(struct={"patient": pid, "code": f"{system}|{code}"})
        got = sorted(r["id"] for r in matches(pages_of(search, server), "Condition"))
        assert got == want, (got, want)

    check("Condition.where(code=system|code) finds exactly the Conditions carrying it", code_search)

    def date_search():
        year, want = record.year_probe()
        search = Observation.where(struct={"patient": pid, "date": f"ge{year}"})
        got = sorted(r["id"] for r in matches(pages_of(search, server), "Observation"))
        assert got == want, (year, got, want)

    check("Observation.where(date=ge<year>) finds exactly the Observations from that year on", date_search)

    def sort_by_date():
        for key, newest_first in (("-date", True), ("date", False)):
            search = Observation.where(struct={"patient": pid, "_sort": key, "_count": "3"})
            check_sorted_by_date(record, matches(pages_of(search, server), "Observation"), newest_first)

    check("Observation _sort=-date and _sort=date, across pages", sort_by_date)

    def summary_count():
        pages = pages_of(Condition.where(struct={"patient": pid, "_summary": "count"}), server)
        assert len(pages) == 1, f"{len(pages)} pages for _summary=count"
        want = len(record.of_type("Condition"))
        assert pages[0]["total"] == want, (pages[0]["total"], want)
        assert not matches(pages, "Condition"), "match entries with _summary=count"

    check("_summary=count: total is the record's Condition count, without match entries", summary_count)

    def include_encounters():
        search = Condition.where(struct={"patient": pid, "_count": "1"}).include("encounter")
        assert "_include=Condition:encounter" in search.construct(), search.construct()
        pages = pages_of(search, server)
        assert len(pages) >= 2, "_count=1 did not page"
        check_include_pages(record, pages)

    check("FHIRSearch.include('encounter') brings exactly the referenced Encounters, page by page", include_encounters)

    def follow_from_everything():
        reference, held = record.followable()
        got = Organization.read_from(reference, server)
        assert f"Organization/{got.id}" == reference, got.id
        assert got.as_json() == held, "the read differs from the copy in $everything"

    check("Encounter.serviceProvider from $everything read at its address (Organization.read_from)", follow_from_everything)

    def resolve_gp():
        # A reference on a resource read on its own (not in a Bundle) is fetched from the
        # server by fhirclient's FHIRReference.resolved.
        patient = Patient.read(pid, server)
        assert patient.generalPractitioner, "the Patient names no general practitioner"
        ref = patient.generalPractitioner[0]
        org = ref.resolved(Organization)
        assert org is not None, "FHIRReference.resolved gave nothing"
        held = {f"Organization/{r['id']}": r for r in record.of_type("Organization")}
        assert ref.reference in held, "the general practitioner is not an Organization in $everything"
        assert org.as_json() == held[ref.reference], "the resolved Organization differs from $everything's"

    check("Patient.generalPractitioner resolved by FHIRReference.resolved", resolve_gp)


if __name__ == "__main__":
    checks.main(main, __doc__)
