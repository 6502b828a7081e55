// Reads KEDA objects (a JSON array) on stdin and checks each against the schema of its kind,
// as generated from KEDA's CRDs: prints one line per error and exits 1 if there is any.
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";

const KINDS = { ScaledObject };
let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = false;
for (const object of JSON.parse(input)) {
  const Kind = KINDS[object.kind];
  if (!Kind) {
    console.log(`${object.kind}: no schema`);
    failed = true;
    continue;
  }
  try {
    new Kind(object).validate();
  } catch (error) {
    console.log(`${object.kind} ${object.metadata?.name}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
