// bench/peer.mjs - the same-run peer: llama.cpp as shipped prebuilt on npm
// (node-llama-cpp, linux-x64 CPU binaries) running a GGUF, timed like bench/run.
// usage: node bench/peer.mjs MODEL.gguf THREADS TEST (pp128 | pp512 | tg128)
// prints one JSON line {"peer":"node-llama-cpp", "tok_s":...}. bench/run calls it
// with NODE_PATH pointing at bench/cache/peer/node_modules.
import { createRequire } from "node:module";
import path from "node:path";

const [modelPath, threadsArg, test] = process.argv.slice(2);
if (!modelPath || !threadsArg || !/^(pp|tg)\d+$/.test(test || "")) {
    console.error("usage: node bench/peer.mjs MODEL.gguf THREADS pp128|pp512|tg128");
    process.exit(2);
}
const threads = Number(threadsArg);
const require = createRequire(path.join(process.env.BN_PEER_DIR || ".", "package.json"));
const { getLlama, LlamaLogLevel } = await import(require.resolve("node-llama-cpp"));

// deterministic prompt ids, the same generator as bench/run
function promptIds(n) {
    const ids = [128000];
    let x = 12345n;
    for (let i = 1; i < n; i++) {
        x = (x * 1103515245n + 12345n) % 2147483648n;
        ids.push(1000 + Number(x % 100000n));
    }
    return ids;
}

const llama = await getLlama({ gpu: false, build: "never", maxThreads: threads, logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({ contextSize: 4096, batchSize: 512, threads: { ideal: threads, min: threads } });
const seq = context.getSequence();
let rate;
if (test.startsWith("pp")) {
    const ids = promptIds(Number(test.slice(2)));
    const t0 = process.hrtime.bigint();
    await seq.evaluateWithoutGeneratingNewTokens(ids);
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    rate = ids.length / dt;
} else {
    const n = Number(test.slice(2));
    await seq.evaluateWithoutGeneratingNewTokens(promptIds(4));
    let count = 0, t0 = 0n;
    // greedy: temperature 0; the first yielded token comes from the prompt's logits
    for await (const _tok of seq.evaluate([promptIds(5)[4]], { temperature: 0 })) {
        if (count === 0) t0 = process.hrtime.bigint();
        else if (count >= n) break;
        count++;
    }
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    rate = (count - 1) / dt;
}
console.log(JSON.stringify({ peer: "node-llama-cpp", threads, test, tok_s: Number(rate.toFixed(3)) }));
await context.dispose();
await model.dispose();
await llama.dispose();
