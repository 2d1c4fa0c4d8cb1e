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
        repairs=batch_repairs,
        input_dir=config["input_dir"],
        images="--images image.jsonl" if config["views"]["enabled"] else "",
    shell:
        "bioiscc index --batch {input.batch:q} --relative-to {params.input_dir:q} {params.images}"
        " --rows-output {output:q} 2> {log:q}"


rule index:
    input:
        batches="results/_batches/batches.txt",
        rows=all_batch_rows,
        skipped="results/skipped.tsv",
        stale="results/stale.txt",
    output:
        tsv=report(
            "results/index.tsv",
            caption="../report/index.rst",
            category="Codes",
            labels={"index": "codes per scene (TSV)"},
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
        mem_mb=2048,
        runtime=10,
    # the summary line (the last line of the log) is repeated on the terminal by the job itself:
    # the workflow's onsuccess handler does not run when it is included as a module
    shell:
        "bioiscc index --rows-from {input.batches:q} --skipped {input.skipped:q} --stale {input.stale:q}"
        " --tsv {output.tsv:q} --jsonl {output.jsonl:q} 2> {log:q}; tail -n 1 {log:q} >&2"


# Scenes that share pixels (the same ISCC-SUM), nearly do (Data-Codes a few bits apart) or look
# alike (ISCC-MIXEDs of their views a few bits apart), across the whole run: `bioiscc similar`.
rule duplicates:
    input:
        "results/index.jsonl",
    output:
        tsv=report(
            "results/duplicates.tsv",
            caption="../report/duplicates.rst",
            category="Codes",
            labels={"index": "scenes that share pixels or look alike"},
        ),
        json="results/duplicates.json",
    log:
        "logs/duplicates.log",
    localrule: True
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    shell:
        "bioiscc similar {input:q} --tsv {output.tsv:q} --json {output.json:q} 2> {log:q}"


# The page a facility shows its users: the codes of every scene, their views, and the groups of
# scenes that share pixels or look alike.
rule page:
    input:
        batches="results/_batches/batches.txt",
        rows=all_batch_rows,
        similar="results/duplicates.json",
        skipped="results/skipped.tsv",
        stale="results/stale.txt",
    output:
        report(
            "results/index.html",
            caption="../report/index.rst",
            category="Codes",
            labels={"index": "codes per scene (table)"},
        ),
    log:
        "logs/page.log",
    localrule: True
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    shell:
        "bioiscc index --rows-from {input.batches:q} --similar {input.similar:q}"
        " --skipped {input.skipped:q} --stale {input.stale:q} --html {output:q} 2> {log:q}"


# On demand (`snakemake verify`): every scene of the index as it stands recomputed from its input
# and compared with its stored code; results/verify.txt says OK, FAILED, MISSING or UNREADABLE per
# scene, and a mismatch fails the run. The index is read, not rebuilt: it is neither an input nor is
# the report an output Snakemake tracks, so that the check runs every time it is asked for and never
# first recomputes the codes it is meant to check. Its summary line is repeated on the console, and
# where the report lies.
rule verify:
    log:
        "logs/verify.log",
    localrule: True
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=2048,
    params:
        root=config["input_dir"],
        index=f"{RESULTS}/index.jsonl",
        report=f"{RESULTS}/verify.txt",
    shell:
        "if [ -f {params.index:q} ] && [ ! -s {params.index:q} ]; then"
        "  echo 'bioiscc verify: the index lists no scenes (no inputs): nothing to verify' | tee {log:q} >&2;"
        "  : > {params.report:q}; exit 0; fi;"
        " rm -f {params.report:q}; status=0;"
        " bioiscc verify {params.index:q} --root {params.root:q} --warn -o {params.report:q}"
        " 2> {log:q} || status=$?;"
        " grep -v ': OK$' {params.report:q} 2> /dev/null | head -n 5 >&2 || true;"
        " grep -E '^bioiscc(: error:|:? verify:)' {log:q} | head -n 5 >&2 || true;"
        " echo 'bioiscc verify: each scene in {params.report}; warnings in {log}' >&2; exit $status"


# On demand (`snakemake clean_stale`): remove the stale result folders results/stale.txt lists (of
# inputs that no longer exist, and of batches no longer in the run). bioiscc clean-stale checks
# each again and removes nothing outside results/, nor the results of an input that still exists.
rule clean_stale:
    log:
        "logs/clean_stale.log",
    localrule: True
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    params:
        results=RESULTS,
    shell:
        'bioiscc clean-stale {params.results:q} --logs "$(dirname {log:q})" 2> {log:q}; cat {log:q} >&2'
