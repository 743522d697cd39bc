// ONNX Runtime Web classifying photos as catdog's page does: the photo's bytes already read,
// then decode (EXIF orientation respected), squash to the model's input size, normalise, run
// the network, read the logits back. ?model=NAME (NAME.onnx beside this page), &ep=wasm|webgpu,
// &size=PIXELS, &warm=N, &mean=R,G,B&std=R,G,B (the model file's normalisation; ImageNet's
// when absent). The result lands as JSON in <body data-result>, or the error in
// <body data-error>.
const params = new URLSearchParams(location.search);
const model = params.get("model");
const ep = params.get("ep") || "wasm";
const size = Number(params.get("size") || 224);
const warm = Number(params.get("warm") || 12);
const PHOTOS = ["cat.jpg", "dog.jpg", "cat-grey.jpg", "dog-cmyk.jpg"];
const triple = (name, fallback) => (params.get(name) ? params.get(name).split(",").map(Number) : fallback);
const MEAN = triple("mean", [0.485, 0.456, 0.406]);
const STD = triple("std", [0.229, 0.224, 0.225]);

// One thread, as catdog's wasm has (and no cross-origin isolation is needed).
ort.env.wasm.numThreads = 1;
ort.env.wasm.wasmPaths = "./";

async function classify(session, blob) {
  const started = performance.now();
  const bitmap = await createImageBitmap(blob, { imageOrientation: "from-image" });
  const canvas = new OffscreenCanvas(size, size);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0, size, size);
  const pixels = context.getImageData(0, 0, size, size).data;
  const plane = size * size;
  const input = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      input[c * plane + i] = (pixels[4 * i + c] / 255 - MEAN[c]) / STD[c];
    }
  }
  const outputs = await session.run({ images: new ort.Tensor("float32", input, [1, 3, size, size]) });
  const [cat, dog] = await outputs.logits.getData();
  const pDog = 1 / (1 + Math.exp(cat - dog));
  return { ms: performance.now() - started, dog: pDog };
}

async function main() {
  const started = performance.now();
  const session = await ort.InferenceSession.create(`./${model}.onnx`, { executionProviders: [ep] });
  const ready = performance.now() - started;
  const blobs = await Promise.all(PHOTOS.map(async (name) => (await fetch(`./${name}`)).blob()));
  const first = await classify(session, blobs[0]);
  const runs = [];
  for (let i = 0; i < warm; i++) {
    runs.push(await classify(session, blobs[(i + 1) % blobs.length]));
  }
  document.body.dataset.result = JSON.stringify({
    model, ep, size, ready_ms: ready, first_ms: first.ms, warm_ms: runs.map((run) => run.ms),
    p_dog: [first, ...runs].map((run) => run.dog),
  });
  document.querySelector("#status").textContent = "done";
}

main().catch((error) => {
  document.body.dataset.error = String(error && error.stack ? error.stack : error);
  document.querySelector("#status").textContent = `failed: ${error}`;
});
