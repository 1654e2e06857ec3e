// The page: pick or drop a file, decode and chunk it here, tag it in the worker, show and download the result.
import { AudioError, chunkTrack, decodeToMono } from "./audio.js";
import { drawTagBars, drawTaggram } from "./draw.js";

const TOP_K = 10; // tags shown as bars (predict.py --top_k's default); the JSON holds all of them
const query = new URLSearchParams(location.search);
const MODEL_URL = query.get("model") || "model/"; // ?model=other/folder/
const BACKEND = query.get("backend"); // ?backend=wasm or webgpu; default: WebGPU where offered
const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
let model = null; // the worker's "ready" message: info (clmr_tagger.json), backend, threads, encoder
let track = null; // the file being tagged, and its result as it arrives

function setState(state, message = "") {
  document.body.dataset.state = state; // loading | ready | busy | done | error (the tests wait on it)
  $("message").textContent = message;
  $("message").hidden = !message;
  $("file").disabled = !model || state === "busy";
  $("download").disabled = state !== "done";
  $("progress").hidden = state !== "busy";
  if (state !== "busy") $("progress-label").textContent = "";
}

/** The progress bar at done/total, or moving without an end (decoding) when done is null. */
function setProgress(done, total, label) {
  if (done === null) $("progress").removeAttribute("value");
  else Object.assign($("progress"), { value: done, max: total });
  $("progress-label").textContent = label;
}

const handlers = {
  ready(message) {
    model = message;
    const { tags, activation, sample_rate: rate, audio_length: length } = model.info;
    const where = model.backend === "webgpu" ? "WebGPU" : `WebAssembly, ${model.threads} thread${model.threads > 1 ? "s" : ""}`;
    $("model-info").textContent = `Model: ${tags.length} tags (${activation}), chunks of ${length} samples ` +
      `(${(length / rate).toFixed(2)} s at ${rate} Hz), on ${where}` + (model.encoder ? "" : "; no encoder, so no embedding");
    setState("ready");
  },
  progress({ stage, done, total }) {
    const offset = stage === "embedding" ? total : 0;
    setProgress(offset + done, model.encoder ? 2 * total : total,
                `${stage === "tags" ? "tagging" : "embedding"}: chunk ${done} of ${total}`);
  },
  tags({ chunkProbs }) {
    track.seconds.tags = (performance.now() - track.started) / 1000 - track.seconds.decode;
    track.chunkProbs = chunkProbs;
    track.probs = trackScores(chunkProbs, model.info.tags.length);
    showResult();
    if (!model.encoder) finish();
  },
  embedding({ embedding }) {
    track.seconds.embedding = (performance.now() - track.started) / 1000 - track.seconds.decode - track.seconds.tags;
    track.embedding = embedding;
    finish();
  },
  error({ message }) {
    setState("error", model ? message : `The model could not be loaded: ${message}`);
  },
};

function finish() {
  setState("done");
  const { decode, tags, embedding } = track.seconds;
  $("progress-label").textContent = `decoded in ${decode.toFixed(1)} s, tagged in ${tags.toFixed(1)} s` +
    (embedding === undefined ? "" : `, embedded in ${embedding.toFixed(1)} s`);
}

worker.onmessage = ({ data }) => handlers[data.type](data);
worker.onerror = (event) => setState("error", `The model worker failed: ${event.message || "it could not start"}`);

/** The track's score per tag: the mean of its chunk probabilities (clmr/evaluation.py: track_level_scores). */
function trackScores(chunkProbs, nTags) {
  const nChunks = chunkProbs.length / nTags;
  return Array.from({ length: nTags }, (_, t) => {
    let sum = 0;
    for (let k = 0; k < nChunks; k++) sum += chunkProbs[k * nTags + t];
    return sum / nChunks;
  });
}

/** [tag, probability], highest first; ties keep the model's order (as predict.py's stable sort). */
function ranked() {
  return model.info.tags.map((tag, t) => [tag, track.probs[t], t]).sort((a, b) => b[1] - a[1] || a[2] - b[2]);
}

function showResult() {
  const minutes = Math.floor(track.durationS / 60), seconds = (track.durationS % 60).toFixed(1).padStart(4, "0");
  $("track-title").textContent = `${track.name}  ${minutes}:${seconds}  (${track.nChunks} chunk${track.nChunks > 1 ? "s" : ""})`;
  drawTagBars($("tags"), ranked().slice(0, TOP_K));
  $("result").hidden = false;
  drawTaggram($("taggram"), track.chunkProbs, model.info.tags, track.centresMs);
}

async function tagFile(file) {
  if (!file || !model || document.body.dataset.state === "busy") return;
  track = null;
  $("result").hidden = true;
  setState("busy");
  setProgress(null, 1, `decoding ${file.name}`);
  const { sample_rate: sampleRate, audio_length: audioLength, min_samples: minSamples } = model.info;
  const started = performance.now();
  try {
    const mono = await decodeToMono(await file.arrayBuffer(), sampleRate, file.name);
    const { chunks, ...rest } = chunkTrack(mono, { sampleRate, audioLength, minSamples }, file.name);
    track = { name: file.name, ...rest, started, seconds: { decode: (performance.now() - started) / 1000 } };
    worker.postMessage({ type: "run", chunks, nChunks: rest.nChunks }, [chunks.buffer]);
  } catch (err) {
    setState("error", err instanceof AudioError ? err.message : `${file.name}: ${err.message}`);
  }
}

/** What predict.py --json 1 prints for the file (all tags), plus the chunks and the embedding. */
function resultJson() {
  const { tags, sample_rate, audio_length, activation } = model.info;
  const nTags = tags.length;
  return {
    path: track.name,
    duration_s: Math.round(track.durationS * 1000) / 1000,
    n_chunks: track.nChunks,
    tags: Object.fromEntries(ranked().map(([tag, p]) => [tag, p])),
    tag_names: tags,
    chunk_centres_ms: track.centresMs,
    chunk_probabilities: Array.from({ length: track.nChunks }, (_, k) => Array.from(track.chunkProbs.subarray(k * nTags, (k + 1) * nTags))),
    embedding: track.embedding ? Array.from(track.embedding) : null,
    embedding_definition: "mean of the chunk representations (512-d), as predict.py --embeddings",
    model: { sample_rate, audio_length, activation, backend: model.backend, threads: model.threads },
    seconds: track.seconds, // decoding and resampling, the tagger's and the encoder's runs
  };
}

function download() {
  const blob = new Blob([JSON.stringify(resultJson(), null, 1)], { type: "application/json" });
  const link = Object.assign(document.createElement("a"), {
    href: URL.createObjectURL(blob), download: `${track.name.replace(/\.[^.]*$/, "")}.clmr.json`,
  });
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  event.target.value = ""; // picking the same file again tags it again
  tagFile(file);
});
$("download").addEventListener("click", download);
const drop = $("drop");
for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
drop.addEventListener("dragover", () => drop.classList.add("over"));
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  drop.classList.remove("over");
  tagFile(event.dataTransfer.files[0]);
});
window.addEventListener("resize", () => track?.chunkProbs && drawTaggram($("taggram"), track.chunkProbs, model.info.tags, track.centresMs));

setState("loading");
worker.postMessage({ type: "load", modelUrl: new URL(MODEL_URL, location.href).href, backend: BACKEND });
