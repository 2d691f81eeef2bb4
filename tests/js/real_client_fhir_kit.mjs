// A third real FHIR client (npm fhir-kit-client, pinned in package-lock.json beside this file)
// against a running Tideway demo: the same searches as the Python clients, through this
// client's search, operation, nextPage, read and resolve calls.
//
// Usage: node real_client_fhir_kit.mjs READY_FILE MODULES_DIR
//   READY_FILE: the JSON `tideway demo --ready-file` writes
//   MODULES_DIR: the folder scripts/real-client.sh ran `npm ci` in (it holds node_modules)
//
// The last line is `fhir-kit-client: N passed, M failed`; the exit status is non-zero when any
// check failed. Every expected answer is worked out here from the patient's $everything.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const NHS_SYSTEM = 'https://fhir.nhs.uk/Id/nhs-number';
const MAX_PAGES = 200;

let passed = 0;
let failed = 0;

// An exception or a failed assertion is a failure, reported, never fatal.
async function check(name, fn) {
  try {
    await fn();
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}`);
    console.error(String(e && e.stack ? e.stack : e).split('\n').slice(0, 6).join('\n'));
    return false;
  }
  passed += 1;
  console.log(`ok   ${name}`);
  return true;
}

// The client lives outside the tree, so it is loaded by the entry point its own package.json
// declares, which is how Node would resolve the bare name.
async function loadClient(modulesDir) {
  const dir = join(modulesDir, 'node_modules', 'fhir-kit-client');
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const entry = pkg.exports?.['.']?.import ?? pkg.main;
  const { Client } = await import(pathToFileURL(join(dir, entry)).href);
  return { Client, version: pkg.version };
}

// The ready file's NHS numbers worth trying: the plain demo patients, then the scenario
// patients, leaving out the opted-out ones (their records are withheld).
function candidates(ready) {
  const optedOut = new Set(ready.opted_out ?? []);
  const all = [...(ready.nhs_numbers ?? []), ...Object.values(ready.scenario_patients ?? {})];
  return [...new Set(all)].filter((nhs) => !optedOut.has(nhs));
}

// A FHIR date or dateTime as milliseconds since the epoch, at the start of the period it names
// (Date.parse takes a year, a month or a day as UTC, as R4 values without a zone are taken).
function instant(value) {
  const t = Date.parse(value);
  assert(!Number.isNaN(t), 'an unreadable date');
  return t;
}

function mode(entry) {
  return entry.search?.mode;
}

function matchesOf(pages, resourceType) {
  const out = [];
  for (const page of pages) {
    for (const e of page.entry ?? []) {
      if (mode(e) !== 'match') continue;
      assert.equal(e.resource.resourceType, resourceType, 'a match of another type');
      out.push(e.resource);
    }
  }
  return out;
}

// The resources of a paged $everything: the total holds on every page, nothing comes twice, and
// the matches add up to the total. Each page's outcome entry is not part of the record.
function everythingResources(pages) {
  let total;
  let seen = 0;
  const keys = new Set();
  const resources = [];
  for (const page of pages) {
    assert.equal(page.resourceType, 'Bundle');
    total ??= page.total;
    assert.equal(page.total, total, 'total changed between pages');
    for (const e of page.entry ?? []) {
      if (mode(e) === 'outcome') continue;
      const key = `${e.resource.resourceType}/${e.resource.id}`;
      assert(!keys.has(key), `${key} on two pages`);
      keys.add(key);
      resources.push(e.resource);
      if (mode(e) === 'match') seen += 1;
    }
  }
  assert.equal(seen, total, 'the matches do not add up to the total');
  return resources;
}

function codings(resource) {
  return (resource.code?.coding ?? []).filter((c) => c.system && c.code).map((c) => `${c.system}|${c.code}`);
}

// One patient's $everything, and the expected answers it implies.
class Record {
  constructor(pid, resources) {
    this.pid = pid;
    this.resources = resources;
  }

  ofType(resourceType) {
    return this.resources.filter((r) => r.resourceType === resourceType);
  }

  addresses(resourceType) {
    return new Set(this.ofType(resourceType).map((r) => `${resourceType}/${r.id}`));
  }

  // A coding some but not all Conditions carry, and the ids carrying it.
  codeProbe() {
    const conditions = this.ofType('Condition');
    for (const token of conditions.flatMap(codings)) {
      const want = conditions.filter((r) => codings(r).includes(token)).map((r) => r.id).sort();
      if (want.length > 0 && want.length < conditions.length) return { token, want };
    }
    return null;
  }

  datedObservations() {
    return this.ofType('Observation').filter((r) => 'effectiveDateTime' in r);
  }

  // The middle one of the dated Observations' distinct years (never the earliest, so `ge` must
  // leave some out), and the ids dated in or after it.
  yearProbe() {
    const dated = this.datedObservations();
    const years = [...new Set(dated.map((r) => new Date(instant(r.effectiveDateTime)).getUTCFullYear()))].sort();
    if (years.length < 2) return null;
    const year = years[Math.floor(years.length / 2)];
    const start = Date.UTC(year, 0, 1);
    const want = dated.filter((r) => instant(r.effectiveDateTime) >= start).map((r) => r.id).sort();
    return { year, want };
  }

  // What `_include=Condition:encounter` should bring for these Conditions: the Encounters they
  // reference that the record holds.
  encountersReferenced(conditions) {
    const held = this.addresses('Encounter');
    return new Set(conditions.map((c) => c.encounter?.reference).filter((ref) => held.has(ref)));
  }

  // An Encounter's serviceProvider that is an Organization the record holds, with its copy.
  followable() {
    const orgs = new Map(this.ofType('Organization').map((r) => [`Organization/${r.id}`, r]));
    for (const enc of this.ofType('Encounter')) {
      const ref = enc.serviceProvider?.reference;
      if (orgs.has(ref)) return { reference: ref, held: orgs.get(ref) };
    }
    return null;
  }

  shortfalls() {
    const out = [];
    const conditions = this.ofType('Condition');
    if (conditions.length < 2) out.push(`${conditions.length} Conditions`);
    if (this.ofType('Encounter').length < 2) out.push(`${this.ofType('Encounter').length} Encounters`);
    if (this.encountersReferenced(conditions).size === 0) out.push('no Condition references a held Encounter');
    if (!this.codeProbe()) out.push('no coding that some but not all Conditions carry');
    if (!this.yearProbe()) out.push('dated Observations span fewer than 2 years');
    if (!this.followable()) out.push('no Encounter.serviceProvider to an Organization in the record');
    return out;
  }
}

const sorted = (set) => [...set].sort();

async function main(readyPath, modulesDir) {
  const ready = JSON.parse(readFileSync(readyPath, 'utf8'));
  const { Client, version } = await loadClient(modulesDir);
  console.log(`fhir-kit-client ${version}`);
  const client = new Client({ baseUrl: ready.base_url, bearerToken: ready.token });

  // Every page of a result, through the client's nextPage.
  async function pagesFrom(first) {
    const pages = [];
    for (let bundle = first; bundle; bundle = await client.nextPage({ bundle })) {
      pages.push(bundle);
      assert(pages.length <= MAX_PAGES, `more than ${MAX_PAGES} pages`);
    }
    return pages;
  }
  const search = async (resourceType, searchParams) => pagesFrom(await client.search({ resourceType, searchParams }));

  let record;
  const chosen = await check('a patient whose $everything (client.operation) can exercise every check', async () => {
    const notes = [];
    for (const [i, nhs] of candidates(ready).entries()) {
      let short;
      try {
        const found = matchesOf(await search('Patient', { identifier: `${NHS_SYSTEM}|${nhs}` }), 'Patient');
        assert.equal(found.length, 1, 'not one patient for one NHS number');
        const pid = found[0].id;
        const first = await client.operation({
          name: '$everything',
          resourceType: 'Patient',
          id: pid,
          method: 'GET',
          input: { _count: 20 },
        });
        const candidate = new Record(pid, everythingResources(await pagesFrom(first)));
        short = candidate.shortfalls();
        if (short.length === 0) {
          record = candidate;
          return;
        }
      } catch (e) {
        // Named by position and error class only: the request URL carries the NHS number.
        short = [`could not be read (${e?.constructor?.name ?? 'error'})`];
      }
      notes.push(`candidate ${i}: ${short.join(', ')}`);
    }
    assert.fail(`no patient in the ready file can exercise every check: ${notes.join('; ')}`);
  });
  if (!chosen) return;
  const pid = record.pid;

  await check('search Condition code=system|code finds exactly the Conditions carrying it', async () => {
    const { token, want } = record.codeProbe();
    const got = matchesOf(await search('Condition', { patient: pid, code: token }), 'Condition');
    assert.deepEqual(got.map((r) => r.id).sort(), want);
  });

  await check('search Observation date=ge<year> finds exactly the Observations from that year on', async () => {
    const { year, want } = record.yearProbe();
    const got = matchesOf(await search('Observation', { patient: pid, date: `ge${year}` }), 'Observation');
    assert.deepEqual(got.map((r) => r.id).sort(), want);
  });

  await check('Observation _sort=-date and _sort=date, across pages (client.nextPage)', async () => {
    const allIds = record.ofType('Observation').map((r) => r.id).sort();
    const dates = record.datedObservations().map((r) => instant(r.effectiveDateTime));
    assert(new Set(dates).size >= 2, 'fewer than 2 distinct dates: the order would prove nothing');
    for (const [key, newestFirst] of [['-date', true], ['date', false]]) {
      const got = matchesOf(await search('Observation', { patient: pid, _sort: key, _count: 3 }), 'Observation');
      assert.deepEqual(got.map((r) => r.id).sort(), allIds, "not the record's Observations");
      const order = got.filter((r) => 'effectiveDateTime' in r).map((r) => instant(r.effectiveDateTime));
      const want = [...dates].sort((a, b) => (newestFirst ? b - a : a - b));
      assert.deepEqual(order, want, `_sort=${key} is not in date order`);
    }
  });

  await check("_summary=count: total is the record's Condition count, without match entries", async () => {
    const pages = await search('Condition', { patient: pid, _summary: 'count' });
    assert.equal(pages.length, 1, 'more than one page for _summary=count');
    assert.equal(pages[0].total, record.ofType('Condition').length);
    assert.equal(matchesOf(pages, 'Condition').length, 0, 'match entries with _summary=count');
  });

  await check('_include=Condition:encounter brings exactly the referenced Encounters, page by page', async () => {
    const pages = await search('Condition', { patient: pid, _include: 'Condition:encounter', _count: 1 });
    assert(pages.length >= 2, '_count=1 did not page');
    const conditions = record.ofType('Condition');
    const matched = [];
    const included = new Set();
    for (const page of pages) {
      assert.equal(page.total, conditions.length, 'total is not the number of matching Conditions');
      const matches = matchesOf([page], 'Condition');
      const includes = (page.entry ?? []).filter((e) => mode(e) === 'include').map((e) => e.resource);
      const encounters = new Set(
        includes.filter((r) => r.resourceType === 'Encounter').map((r) => `Encounter/${r.id}`),
      );
      assert.deepEqual(sorted(encounters), sorted(record.encountersReferenced(matches)), 'Encounters on a page');
      // The only other includes are the gateway's Provenance for facts on the same page.
      const onPage = new Set(matches.map((r) => `Condition/${r.id}`));
      for (const r of includes.filter((r) => r.resourceType !== 'Encounter')) {
        assert.equal(r.resourceType, 'Provenance', `a ${r.resourceType} included`);
        assert((r.target ?? []).some((t) => onPage.has(t.reference)), 'a Provenance for nothing on its page');
      }
      matched.push(...matches.map((r) => r.id));
      for (const ref of encounters) included.add(ref);
    }
    assert.deepEqual(matched.sort(), conditions.map((r) => r.id).sort(), "not the record's Conditions");
    const want = record.encountersReferenced(conditions);
    assert(want.size > 0, 'no Encounter to include');
    assert.deepEqual(sorted(included), sorted(want));
  });

  await check('Encounter.serviceProvider from $everything followed with client.resolve', async () => {
    const { reference, held } = record.followable();
    const got = await client.resolve({ reference });
    assert.equal(`${got.resourceType}/${got.id}`, reference);
    assert.deepEqual(got, held, 'the resource read differs from the copy in $everything');
  });

  await check('Patient read (client.read), its generalPractitioner followed (client.resolve)', async () => {
    const patient = await client.read({ resourceType: 'Patient', id: pid });
    assert.equal(patient.id, pid);
    const reference = patient.generalPractitioner?.[0]?.reference;
    const held = record.ofType('Organization').find((r) => `Organization/${r.id}` === reference);
    assert(held, 'the general practitioner is not an Organization in $everything');
    assert.deepEqual(await client.resolve({ reference }), held);
  });
}

if (process.argv.length !== 4) {
  console.error('usage: node real_client_fhir_kit.mjs READY_FILE MODULES_DIR');
  process.exit(2);
}
try {
  await main(process.argv[2], process.argv[3]);
} catch (e) {
  // Set-up failed before a check could count it.
  console.error(e);
  failed += 1;
}
console.log(`fhir-kit-client: ${passed} passed, ${failed} failed`);
// The client's keep-alive sockets would hold the process open for a while; the work is done.
process.exit(failed || !passed ? 1 : 0);
