# Per input, two jobs: walk (its scenes and their geometry) and hash (every scene's ISCC-SUM, and
# the input's container with the raw-bytes ISCC-SUM, in one process). Never a job per scene: each
# job pays the start-up of Python and of the reader (about 1.5 s for bioio) once. The threads are
# truthful: with one thread, hash reads and hashes in turn (--threads 1, no read-ahead thread).


rule walk:
    input:
        input_path,
    output:
        "results/{key}/walk.json",
    log:
        "logs/{key}/walk.log",
    benchmark:
        "logs/{key}/walk.benchmark.tsv"
    group:
        "bioiscc_input"
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=light_mem_mb,
        runtime=walk_runtime,
    params:
        source=input_source,
        fingerprint=input_fingerprint,
        retry=retry_token,
    shell:
        "(bioiscc walk --record-errors -o {output:q} -- {params.source:q}"
        " || bioiscc failed-record walk --exit-status $? -o {output:q} -- {params.source:q})"
        " 2> {log:q}"


rule hash:
    input:
        walk="results/{key}/walk.json",
        source=input_path,
    output:
        scenes="results/{key}/scenes.jsonl",
        container="results/{key}/container.json",
    log:
        "logs/{key}/hash.log",
    benchmark:
        "logs/{key}/hash.benchmark.tsv"
    group:
        "bioiscc_input"
    conda:
        "../../envs/bioiscc.yaml"
    threads: read_threads
    resources:
        mem_mb=read_mem_mb,
        runtime=runtime_minutes,
    params:
        source=input_source,
        options=flags(
            simprints=config["simprints"],
            narrow=config["narrow"],
            no_raw=not config["raw_sum"],
        ),
    shell:
        "(bioiscc container --manifest {input.walk:q} --scenes-output {output.scenes:q}"
        " --record-errors {params.options} --threads {threads} -o {output.container:q}"
        " || bioiscc failed-record hash --exit-status $? --scenes-output {output.scenes:q}"
        " -o {output.container:q} -- {params.source:q})"
        " 2> {log:q}"
