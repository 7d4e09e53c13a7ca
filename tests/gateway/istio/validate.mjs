// Validates Istio resources against Istio's CRD schemas (@kubernetes-models/istio, generated
// from Istio 1.29.2's crd-all.gen.yaml): reads a JSON array of objects on stdin, prints a
// JSON array with, per object, {"ok": true} or {"ok": false, "errors": [...]}.
// Unknown kinds are errors. Used by tests/gateway/test_deploy.py.
import { readFileSync } from "node:fs";
import { WasmPlugin } from "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin";
import { EnvoyFilter } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter";

const MODELS = {
  "extensions.istio.io/v1alpha1/WasmPlugin": WasmPlugin,
  "networking.istio.io/v1alpha3/EnvoyFilter": EnvoyFilter,
};

const docs = JSON.parse(readFileSync(0, "utf8"));
const out = docs.map((doc) => {
  const Model = MODELS[`${doc.apiVersion}/${doc.kind}`];
  if (!Model) return { ok: false, errors: [`no schema for ${doc.apiVersion} ${doc.kind}`] };
  try {
    new Model(doc).validate();
    return { ok: true };
  } catch (e) {
    return { ok: false, errors: [String(e.message || e)] };
  }
});
process.stdout.write(JSON.stringify(out) + "\n");
