/** The scenario files under testdata/ (shared by the scenario test and the mutation check). */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** testdata/ lives beside the TypeScript sources; the compiled tests run from dist/. */
const TESTDATA = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'testkit', 'sim', 'testdata');

export interface ScenarioFile {
  readonly name: string;
  readonly text: string;
}

export function scenarioFiles(): ScenarioFile[] {
  return readdirSync(TESTDATA)
    .filter((name) => name.endsWith('.txt'))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(TESTDATA, name), 'utf8') }));
}
