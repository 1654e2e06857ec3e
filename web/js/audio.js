// Audio to model input, as predict.py does it: decode, mix to mono, resample to the model's rate,
// cut into consecutive non-overlapping chunks (clmr/evaluation.py: chunk_starts).

// A track shorter than this fraction of a chunk is refused (clmr/inference.py: MIN_CHUNK_FRACTION);
// used only when the model's JSON does not give min_samples.
export const MIN_CHUNK_FRACTION = 0.5;

/** A file the page cannot tag: not audio, empty, or too short. */
export class AudioError extends Error {}

/**
 * Decode any file the browser can decode to mono float32 at `sampleRate`.
 * decodeAudioData resamples to its context's rate, so decoding in an OfflineAudioContext at the
 * model's rate is the resampling step; a file already at that rate is not resampled at all.
 */
export async function decodeToMono(bytes, sampleRate, name) {
  const context = new OfflineAudioContext({ numberOfChannels: 1, length: 1, sampleRate });
  let buffer;
  try {
    buffer = await context.decodeAudioData(bytes);
  } catch (err) {
    throw new AudioError(`${name}: not an audio file this browser can decode (${err.message || err.name})`);
  }
  if (buffer.length === 0) throw new AudioError(`${name}: the file holds no audio`);
  return mixToMono(buffer);
}

/** The mean of the channels (predict.py: data.mean(axis=1)). */
export function mixToMono(buffer) {
  if (buffer.numberOfChannels === 1) return buffer.getChannelData(0).slice();
  const mono = new Float32Array(buffer.length);
  for (let c = 0; c < buffer.numberOfChannels; c++) {
    const channel = buffer.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i] += channel[i];
  }
  for (let i = 0; i < mono.length; i++) mono[i] /= buffer.numberOfChannels;
  return mono;
}

/** First sample of each chunk: every audioLength while a whole chunk fits; a short track is one chunk. */
export function chunkStarts(nSamples, audioLength) {
  const n = Math.max(Math.floor(nSamples / audioLength), 1);
  return Array.from({ length: n }, (_, k) => k * audioLength);
}

/**
 * (nChunks * audioLength) samples, the chunks of chunkStarts one after another; a track shorter than
 * one chunk is zero-padded to one, a tail shorter than a chunk is left out, a track shorter than
 * minSamples is refused.
 */
export function chunkTrack(mono, { sampleRate, audioLength, minSamples }, name) {
  const needed = minSamples ?? Math.ceil(MIN_CHUNK_FRACTION * audioLength);
  if (mono.length < needed) {
    throw new AudioError(`${name}: too short (${(mono.length / sampleRate).toFixed(2)} s; at least ` +
                         `${(needed / sampleRate).toFixed(2)} s, half a chunk, is needed)`);
  }
  const starts = chunkStarts(mono.length, audioLength);
  const size = starts.length * audioLength; // the chunks are the start of the track, one after another
  const chunks = mono.length >= size ? mono.subarray(0, size) : new Float32Array(size);
  if (chunks.buffer !== mono.buffer) chunks.set(mono); // zero-padded to one chunk
  const centresMs = starts.map((s) => ((s + audioLength / 2) * 1000) / sampleRate);
  return { chunks, nChunks: starts.length, centresMs, durationS: mono.length / sampleRate };
}
