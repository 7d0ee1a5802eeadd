"""RAG throughput, each comparison side by side in one run:

1. build:     build_index passages/s vs the encoder's bare batched forward (same passages, batch size,
              max length; goal >= 0.9x). turbo's side is the whole build after the encoder loads:
              reading the JSONL, encoding, writing the shards and the passages folder, the faiss index.
2. inference: inference_rag's batched path (questions encoded in batches, one faiss search, prompts
              generated together) vs one query at a time (encode, search, generate per question), the
              same questions and greedy answers (goal >= 4x).
3. index:     HNSW32 vs Flat on 100k vectors: recall@10 of HNSW against the exact Flat result, and
              queries/s of each (plus build seconds).

    python benchmarks/rag_throughput.py [--parts build,inference,index] [--passages 1000]
        [--questions 32] [--vectors 100000]

Needs the example corpus and models (examples/rag/run.sh makes them): outputs/rag_example/passages.jsonl,
models/all-MiniLM-L6-v2, models/smollm2-135m-instruct. The machine's other load changes all numbers:
compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ENCODER = "models/all-MiniLM-L6-v2"
GENERATOR = "models/smollm2-135m-instruct"
CORPUS = Path("outputs/rag_example/passages.jsonl")


def bench_build(args: argparse.Namespace) -> dict[str, float]:
    import torch

    from turbo.modeling.rag.encoder import load_encoder, pool
    from turbo.pipelines.preprocessing.build_index import build, passage_text
    from turbo.settings.pipelines.build_index import BuildIndexSettings

    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()[: args.passages]]
    folder = Path(tempfile.mkdtemp(prefix="rag_bench_"))
    source = folder / "passages.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    settings = BuildIndexSettings.model_validate(
        {
            "passages_source": str(source),
            "encoder_settings": {"model_path": ENCODER},
            "index_settings": {"index_path": str(folder / "index.faiss"), "passages_path": str(folder / "p")},
            "normalize": True,
            "batch_size": args.batch,
            "max_length": args.max_length,
        }
    )
    model, tokenizer = load_encoder(settings.encoder_settings)
    model.eval()
    texts = [passage_text(row, "") for row in rows]

    def bare() -> None:
        with torch.inference_mode():
            for start in range(0, len(texts), args.batch):
                batch = tokenizer(
                    texts[start : start + args.batch], padding=True, truncation=True,
                    max_length=args.max_length, return_tensors="pt",
                )  # fmt: skip
                hidden = model(**batch).last_hidden_state
                pool(hidden, batch["attention_mask"], "mean", True)

    bare()  # warm-up (first-call allocations) for both sides
    start = time.perf_counter()
    bare()
    bare_seconds = time.perf_counter() - start
    start = time.perf_counter()
    count = build(settings, model, tokenizer)
    turbo_seconds = time.perf_counter() - start
    return {
        "passages": count,
        "bare_forward_passages_per_s": len(texts) / bare_seconds,
        "build_index_passages_per_s": count / turbo_seconds,
        "ratio_build_index_vs_bare": bare_seconds / turbo_seconds,
    }


def bench_inference(args: argparse.Namespace) -> dict[str, float]:
    import numpy as np

    from turbo.data.chat import build_chat_samples
    from turbo.generators.rag import QuestionEncoder, answer_with_retrieval
    from turbo.modeling.loading import load_model
    from turbo.modeling.rag.encoder import load_encoder
    from turbo.modeling.rag.retriever import load_retriever
    from turbo.modeling.tokenizer import load_tokenizer
    from turbo.settings.generation import CustomGenerationSettings, GeneratorTransformersSettings
    from turbo.settings.pipelines.inference.rag import RagInferenceExperimentSettings

    settings = RagInferenceExperimentSettings.model_validate(
        json.loads(Path("examples/rag/inference_rag.json").read_text())
    )
    entry = settings.inference_settings[0]
    rag = entry.model_settings
    retrieval = rag.retrieval_settings.model_copy(update={"n_docs": args.n_docs})
    questions = [json.loads(line) for line in Path("examples/rag/questions.jsonl").read_text().splitlines()]
    records = Path(tempfile.mkdtemp(prefix="rag_bench_")) / "questions.jsonl"
    rng = np.random.default_rng(0)
    picked = [questions[i % len(questions)] for i in rng.permutation(args.questions)]
    records.write_text("".join(json.dumps({**q, "id": f"b{i}"}) + "\n" for i, q in enumerate(picked)))
    dataset = settings.dataset_settings.model_copy(
        update={
            "sources": [settings.dataset_settings.sources[0].model_copy(update={"records_path": records})]
        }
    )
    tokenizer = load_tokenizer(entry.tokenizer_settings, rag.generator_settings)
    samples, _ = build_chat_samples(dataset, tokenizer, seed=0, inference=True)
    generator = load_model(rag.generator_settings, tokenizer, entry.tokenizer_settings).eval()
    encoder = QuestionEncoder(*load_encoder(rag.question_encoder_settings), "mean", True)
    retriever = load_retriever(
        rag.index_settings.index_path, rag.index_settings.passages_path, "index_settings", 384, args.n_docs
    )
    generation = GeneratorTransformersSettings(max_new_tokens=args.max_new_tokens)
    custom = CustomGenerationSettings()

    def answer(group: list, batch: int) -> list:
        settings = retrieval.model_copy(update={"retrieval_batch_size": batch})
        return answer_with_retrieval(
            generator,
            tokenizer,
            encoder,
            retriever,
            group,
            dataset,
            settings,
            generation,
            custom,
            batch=batch,
        )[0]

    answer(samples[:2], 2)  # warm-up
    start = time.perf_counter()
    batched = answer(samples, args.batch)
    batched_seconds = time.perf_counter() - start
    start = time.perf_counter()
    single = [answer([sample], 1)[0] for sample in samples]
    single_seconds = time.perf_counter() - start
    same = sum(a == b for a, b in zip(batched, single, strict=True))
    return {
        "questions": len(samples),
        "one_at_a_time_questions_per_s": len(samples) / single_seconds,
        "batched_questions_per_s": len(samples) / batched_seconds,
        "ratio_batched_vs_one_at_a_time": single_seconds / batched_seconds,
        "identical_answers": same,
    }


def bench_index(args: argparse.Namespace) -> dict[str, float]:
    import faiss
    import numpy as np

    rng = np.random.default_rng(0)
    width, clusters = 384, 1000  # clustered like real embeddings, unit length
    centers = rng.normal(size=(clusters, width)).astype(np.float32)
    vectors = centers[rng.integers(0, clusters, args.vectors)] + 0.6 * rng.normal(
        size=(args.vectors, width)
    ).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(args.vectors, args.queries, replace=False)] + 0.05 * rng.normal(
        size=(args.queries, width)
    ).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    results: dict[str, float] = {"vectors": args.vectors, "queries": args.queries}
    found = {}
    for factory in ("Flat", "HNSW32"):
        index = faiss.index_factory(width, factory, faiss.METRIC_INNER_PRODUCT)
        start = time.perf_counter()
        index.add(vectors)
        results[f"{factory}_build_s"] = time.perf_counter() - start
        if factory.startswith("HNSW"):
            index.hnsw.efSearch = 64  # what turbo's Retriever sets
        start = time.perf_counter()
        _, found[factory] = index.search(queries, 10)
        results[f"{factory}_queries_per_s"] = args.queries / (time.perf_counter() - start)
    hits = [len(set(a) & set(b)) for a, b in zip(found["HNSW32"], found["Flat"], strict=True)]
    results["HNSW32_recall_at_10"] = sum(hits) / (10 * args.queries)
    results["ratio_HNSW32_vs_Flat_queries_per_s"] = (
        results["HNSW32_queries_per_s"] / results["Flat_queries_per_s"]
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="build,inference,index")
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--n-docs", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    parts = {"build": bench_build, "inference": bench_inference, "index": bench_index}
    for name in args.parts.split(","):
        result = parts[name](args)
        print(
            json.dumps(
                {"part": name, **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}}
            )
        )


if __name__ == "__main__":
    main()
