# Per batch of inputs (see "batches" in common.smk; its batch file, results/_batches/<batch>/
# inputs.jsonl, names each input's source and result folder), one job each: walk (the scenes and
# their geometry), hash (every
# scene's ISCC-SUM, and the input's container with the raw-bytes ISCC-SUM). A job runs one process
# over its batch, which reuses every input whose results are current and recomputes the others;
# its output is the batch log (which inputs were computed or reused, their status). The per-input
# results are results/<key>/walk.json, scenes.jsonl and container.json, as one command per input
# writes them. The threads are truthful: with one thread, hash reads and hashes in turn.


rule walk:
    input:
        # the inputs themselves are not listed (100,000 files would cost the DAG minutes): the
        # fingerprint parameter changes with any file of any input of the batch
        batch="results/_batches/{batch}/inputs.jsonl",
    output:
        "results/_batches/{batch}/walk.jsonl",
    log:
        "logs/_batches/{batch}/walk.log",
    benchmark:
        "logs/_batches/{batch}/walk.benchmark.tsv"
    group:
        "bioiscc_batch"
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=light_mem_mb,
        runtime=walk_runtime,
    params:
        repairs=batch_repairs,
        fingerprint=batch_fingerprint,
        retry=batch_retry,
        options=flags(retry_failed=config["retry_failed"], no_progress=True),
    shell:
        "bioiscc walk --batch {input.batch:q} --batch-log {output:q} {params.options} 2> {log:q}"


rule hash:
    input:
        batch="results/_batches/{batch}/inputs.jsonl",
        walk="results/_batches/{batch}/walk.jsonl",
    output:
        "results/_batches/{batch}/hash.jsonl",
    log:
        "logs/_batches/{batch}/hash.log",
    benchmark:
        "logs/_batches/{batch}/hash.benchmark.tsv"
    group:
        "bioiscc_batch"
    conda:
        "../../envs/bioiscc.yaml"
    threads: read_threads
    resources:
        mem_mb=read_mem_mb,
        runtime=runtime_minutes,
    params:
        repairs=batch_repairs,
        options=flags(
            simprints=config["simprints"],
            narrow=config["narrow"],
            no_raw=not config["raw_sum"],
            retry_failed=config["retry_failed"],
            no_progress=True,
        ),
    shell:
        "bioiscc hash --batch {input.batch:q} --batch-log {output:q} {params.options}"
        " --threads {threads} 2> {log:q}"
