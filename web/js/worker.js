// The model, in a Web Worker: loads what export.py wrote (clmr_tagger.json, clmr_tagger.onnx and,
// when present, clmr_encoder.onnx) with onnxruntime-web, and runs a track's chunks in batches.
//
// Messages in:  {type: "load", modelUrl, backend}  {type: "run", chunks, nChunks}
// Messages out: {type: "ready", info, backend, threads, encoder}  {type: "progress", stage, done, total}
//               {type: "tags", chunkProbs}  {type: "embedding", embedding}  {type: "error", message}

const RUNTIME = new URL("../node_modules/onnxruntime-web/dist/", import.meta.url).href;
const BATCH_SIZE = 8; // chunks per run: bounds memory (about 10 MB of activations per chunk)
const MAX_THREADS = 8;
const TAGS_JSON = "clmr_tagger.json", TAGGER = "clmr_tagger.onnx", ENCODER = "clmr_encoder.onnx";
const EMBEDDING_SIZE = 512;
const EXPORT_HINT = "export one: python export.py --checkpoint_path ENCODER --finetuner_checkpoint_path HEAD --web web/model";

let tagger, encoder, info; // a model: {session, runtime (the onnxruntime-web module it runs on), url}

class ModelError extends Error {}

self.onmessage = async ({ data }) => {
  try {
    if (data.type === "load") await load(data.modelUrl, data.backend);
    else if (data.type === "run") await run(data.chunks, data.nChunks);
  } catch (err) {
    const known = err instanceof ModelError;
    self.postMessage({ type: "error", message: known ? err.message : `the model failed: ${err.message || err}` });
  }
};

async function fetchOk(url, what) {
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new ModelError(`cannot fetch ${what} ${url} (${err.message})`);
  }
  if (!response.ok) throw new ModelError(`no ${what} at ${url} (HTTP ${response.status}); ${EXPORT_HINT}`);
  return response;
}

/** The tagger's description; every field the page relies on is checked here. */
async function readInfo(url) {
  const text = await (await fetchOk(url, "model description")).text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ModelError(`${url} is not JSON`);
  }
  const positive = (v) => Number.isInteger(v) && v > 0;
  const problems = [];
  if (!Array.isArray(json.tags) || !json.tags.length || !json.tags.every((t) => typeof t === "string")) problems.push("tags (a list of names)");
  if (!["sigmoid", "softmax"].includes(json.activation)) problems.push("activation (sigmoid or softmax)");
  if (!positive(json.sample_rate)) problems.push("sample_rate");
  if (!positive(json.audio_length)) problems.push("audio_length");
  if (json.min_samples !== undefined && !positive(json.min_samples)) problems.push("min_samples");
  if (typeof json.input !== "string" || typeof json.output !== "string") problems.push("input and output names");
  if (problems.length) throw new ModelError(`${url} is not a clmr_tagger.json from export.py: bad or missing ${problems.join(", ")}`);
  return json;
}

/** WebGPU on a real GPU adapter (not a software fallback), else WebAssembly. */
async function preferredBackend() {
  try {
    const adapter = await self.navigator.gpu?.requestAdapter();
    if (adapter && !(adapter.info?.isFallbackAdapter ?? adapter.isFallbackAdapter)) return "webgpu";
  } catch { /* no usable adapter */ }
  return "wasm";
}

async function importRuntime(backend) {
  const url = RUNTIME + (backend === "webgpu" ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs");
  try {
    return await import(url);
  } catch {
    throw new ModelError(`onnxruntime-web is missing (${url}): run npm ci in web/`);
  }
}

async function openSession(bytes, backend) {
  const runtime = await importRuntime(backend);
  runtime.env.wasm.wasmPaths = RUNTIME;
  runtime.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, MAX_THREADS) : 1;
  return { session: await runtime.InferenceSession.create(bytes, { executionProviders: [backend] }), runtime, backend };
}

/** A model on WebGPU where the browser offers it, else (or if that fails) on WebAssembly. */
async function openModel(bytes, url, backend) {
  try {
    return { ...(await openSession(bytes.slice(), backend)), url };
  } catch (err) {
    if (err instanceof ModelError) throw err;
    if (backend === "wasm") throw new ModelError(`${url} is not a model onnxruntime-web can load (${err.message || err})`);
    console.warn(`WebGPU failed (${err.message}); using WebAssembly`);
    return openModel(bytes, url, "wasm");
  }
}

/** Input (batch, 1, audio_length) and output (batch, outputSize) as the JSON says, or a clear mismatch. */
function checkSignature({ session, url }, outputSize, why, outputName) {
  const input = session.inputMetadata?.find((m) => m.name === info.input);
  if (!session.inputNames.includes(info.input)) {
    throw new ModelError(`${url} has input ${session.inputNames.join(", ")}, but ${TAGS_JSON} says ${info.input}`);
  }
  if (outputName && session.outputNames[0] !== outputName) {
    throw new ModelError(`${url} has output ${session.outputNames.join(", ")}, but ${TAGS_JSON} says ${outputName}`);
  }
  const length = input?.shape?.at(-1);
  if (typeof length === "number" && length !== info.audio_length) {
    throw new ModelError(`${url} takes chunks of ${length} samples, but ${TAGS_JSON} says audio_length ${info.audio_length}`);
  }
  const output = session.outputMetadata?.[0];
  const size = output?.shape?.at(-1);
  if (typeof size === "number" && size !== outputSize) {
    throw new ModelError(`${url} outputs ${size} values per chunk, but ${outputSize} are expected (${why}); ` +
                         "export the model and its JSON together");
  }
}

async function load(modelUrl, backend) {
  const base = new URL(modelUrl, self.location.href);
  info = await readInfo(new URL(TAGS_JSON, base).href);
  const taggerUrl = new URL(TAGGER, base).href;
  const bytes = new Uint8Array(await (await fetchOk(taggerUrl, "tagger model")).arrayBuffer());
  tagger = await openModel(bytes, taggerUrl, backend === "wasm" || backend === "webgpu" ? backend : await preferredBackend());
  checkSignature(tagger, info.tags.length, `${TAGS_JSON} names ${info.tags.length} tags`, info.output);
  encoder = null;
  const encoderUrl = new URL(ENCODER, base).href;
  const response = await fetch(encoderUrl).catch(() => null);
  if (response?.ok) { // optional: without it the page gives tags but no embedding
    encoder = await openModel(new Uint8Array(await response.arrayBuffer()), encoderUrl, tagger.backend);
    checkSignature(encoder, EMBEDDING_SIZE, "a CLMR encoder's representation");
  }
  const threads = tagger.backend === "wasm" ? tagger.runtime.env.wasm.numThreads : 0;
  self.postMessage({ type: "ready", info, backend: tagger.backend, threads, encoder: Boolean(encoder) });
}

/** Run a model on every chunk, BATCH_SIZE at a time: (nChunks * outputSize) float32. */
async function runChunks({ session, runtime }, chunks, nChunks, outputSize, stage) {
  const length = info.audio_length;
  const out = new Float32Array(nChunks * outputSize);
  for (let start = 0; start < nChunks; start += BATCH_SIZE) {
    const n = Math.min(BATCH_SIZE, nChunks - start);
    const input = new runtime.Tensor("float32", chunks.subarray(start * length, (start + n) * length), [n, 1, length]);
    const result = (await session.run({ [info.input]: input }))[session.outputNames[0]];
    if (result.data.length !== n * outputSize) {
      throw new ModelError(`the model gave ${result.dims.join("x")} outputs for ${n} chunks, ` +
                           `${outputSize} per chunk expected; export the model and its JSON together`);
    }
    out.set(result.data, start * outputSize);
    result.dispose?.();
    self.postMessage({ type: "progress", stage, done: start + n, total: nChunks });
  }
  return out;
}

async function run(chunks, nChunks) {
  const chunkProbs = await runChunks(tagger, chunks, nChunks, info.tags.length, "tags");
  self.postMessage({ type: "tags", chunkProbs }, [chunkProbs.buffer]);
  let embedding = null;
  if (encoder) { // the track embedding as predict.py --embeddings defines it: the mean chunk representation
    const representations = await runChunks(encoder, chunks, nChunks, EMBEDDING_SIZE, "embedding");
    embedding = new Float32Array(EMBEDDING_SIZE);
    for (let d = 0; d < EMBEDDING_SIZE; d++) {
      let sum = 0;
      for (let k = 0; k < nChunks; k++) sum += representations[k * EMBEDDING_SIZE + d];
      embedding[d] = sum / nChunks;
    }
  }
  self.postMessage({ type: "embedding", embedding }, embedding ? [embedding.buffer] : []);
}
