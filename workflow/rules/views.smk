# Per batch (with views enabled), two more jobs: extract_views (each scene's views as 8-bit PNGs,
# and their records, in results/<key>/views/) and mix (each view's ISCC-IMAGE, the scene's
# ISCC-MIXED, and with the scene's ISCC-SUM its composite ISCC-CODE, in results/<key>/image.jsonl).
# Same defaults as `bioiscc imagecode`, so its codes equal the workflow's. The algorithm is
# docs/views.md (bioiscc-views/1).


rule extract_views:
    input:
        batch="results/_batches/{batch}/inputs.jsonl",
        walk="results/_batches/{batch}/walk.jsonl",
    output:
        "results/_batches/{batch}/views.jsonl",
    log:
        "logs/_batches/{batch}/extract_views.log",
    benchmark:
        "logs/_batches/{batch}/extract_views.benchmark.tsv"
    group:
        "bioiscc_batch"
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=read_mem_mb,
        runtime=runtime_minutes,
    params:
        repairs=batch_repairs,
        views=view_options(config["views"]),
        options=flags(retry_failed=config["retry_failed"], no_progress=True),
    shell:
        "bioiscc extract-views --batch {input.batch:q} --batch-log {output:q} {params.views}"
        " {params.options} 2> {log:q}"


rule mix:
    input:
        batch="results/_batches/{batch}/inputs.jsonl",
        views="results/_batches/{batch}/views.jsonl",
        hashed="results/_batches/{batch}/hash.jsonl",
    output:
        "results/_batches/{batch}/mix.jsonl",
    log:
        "logs/_batches/{batch}/mix.log",
    benchmark:
        "logs/_batches/{batch}/mix.benchmark.tsv"
    group:
        "bioiscc_batch"
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    params:
        repairs=batch_repairs,
        bits=config["views"]["bits"],
        options=flags(retry_failed=config["retry_failed"], no_progress=True),
    shell:
        "bioiscc mix --batch {input.batch:q} --batch-log {output:q} --bits {params.bits}"
        " {params.options} 2> {log:q}"
