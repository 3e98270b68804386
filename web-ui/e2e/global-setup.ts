/// <reference types="node" />
// Playwright's globalSetup: one lab of 4 boards for every spec (they run in
// one worker, in order), handed to them through lab.json ($TF_E2E_LAB).
// The function it returns is the global teardown: the lab always stops.
import { rmSync } from "node:fs";
import { labFile, startLab, stopLab, waitOnline, writeLab } from "./lab";

export default async function globalSetup(): Promise<() => Promise<void>> {
  const lab = startLab({ boards: 4 });
  try {
    await waitOnline(lab, 60_000);
    writeLab(lab);
  } catch (e) {
    stopLab(lab);
    throw e;
  }
  return async () => {
    rmSync(labFile(), { force: true }); // its tokens die with the lab
    stopLab(lab);
  };
}
