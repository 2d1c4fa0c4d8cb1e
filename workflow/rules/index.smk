# The index: one row per scene of every input, as TSV (in the report), JSON Lines and an HTML table,
# with the scene's ISCC-MIXED and views (index.html shows them as thumbnails) when views are
# enabled. Made in two steps so that a small change costs a small refresh: index_batch tabulates
# one batch (rerun only when its batch was), index merges the batches' rows.


rule index_batch:
    input:
        batch="results/_batches/{batch}/inputs.jsonl",
        hashed="results/_batches/{batch}/hash.jsonl",
        mixed=batch_mixed,
    output:
        "results/_batches/{batch}/index.jsonl",
    log:
        "logs/_batches/{batch}/index.log",
    benchmark:
        "logs/_batches/{batch}/index.benchmark.tsv"
    group:
        "bioiscc_batch"
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    params:
        input_dir=config["input_dir"],
        images="--images image.jsonl" if config["views"]["enabled"] else "",
    shell:
        "bioiscc index --batch {input.batch:q} --relative-to {params.input_dir:q} {params.images}"
        " --rows-output {output:q} 2> {log:q}"


rule index:
    input:
        batches="results/_batches/batches.txt",
        rows=all_batch_rows,
    output:
        tsv=report(
            "results/index.tsv",
            caption="../report/index.rst",
            category="Codes",
            labels={"index": "codes per scene (TSV)"},
        ),
        html=report(
            "results/index.html",
            caption="../report/index.rst",
            category="Codes",
            labels={"index": "codes per scene (table)"},
        ),
        jsonl="results/index.jsonl",
    log:
        "logs/index.log",
    benchmark:
        "logs/index.benchmark.tsv"
    localrule: True
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    shell:
        "bioiscc index --rows-from {input.batches:q}"
        " --tsv {output.tsv:q} --jsonl {output.jsonl:q} --html {output.html:q} 2> {log:q}"
