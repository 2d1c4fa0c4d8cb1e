# Across the run: one row per scene of every input, as TSV (in the report) and JSON Lines, with
# the scene's ISCC-MIXED and views (index.html shows them as thumbnails) when views are enabled.


rule index:
    input:
        containers=all_containers,
        images=all_images,
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
    params:
        input_dir=config["input_dir"],
        retry=f"--retry-marker {RETRY_MARKER}" if config["retry_failed"] else "",
        images="--images image.jsonl" if config["views"]["enabled"] else "",
    shell:
        "printf '%s\\n' {input.containers:q}"
        " | bioiscc index --from - --relative-to {params.input_dir:q} {params.retry} {params.images}"
        " --tsv {output.tsv:q} --jsonl {output.jsonl:q} --html {output.html:q} 2> {log:q}"
