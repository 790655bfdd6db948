"""The panels of the "ML services" dashboard (scripts/grafana_dashboard.py lays them out): one
row per area, each panel a title, a unit and its PromQL queries. Every selector carries the
`service` variable, so the whole dashboard follows it."""

S = 'job=~"$service"'  # every selector carries it: the dashboard follows the variable


def q(expr: str, legend: str = "") -> dict:
    return {"expr": expr.replace("SVC", S), "legendFormat": legend}


def p95(metric: str, by: str = "") -> str:
    return f"histogram_quantile(0.95, sum by (le{by}) (rate({metric}_bucket{{SVC}}[5m])))"


# (row, [(title, unit, [queries])]); two panels a line of the grid
ROWS = [
    (
        "HTTP (all services)",
        [
            (
                "Requests/s by route and status",
                "reqps",
                [
                    q(
                        "sum by (job, route, status) (rate(http_requests_total{SVC}[1m]))",
                        "{{job}} {{route}} {{status}}",
                    )
                ],
            ),
            (
                "p95 latency by route",
                "s",
                [q(p95("http_request_duration_seconds", ", job, route"), "{{job}} {{route}}")],
            ),
            (
                "/v1 5xx ratio (availability SLI, objective 0.5%)",
                "percentunit",
                [
                    q("job:slo_errors_per_request:ratio_rate5m{SVC}", "{{job}} 5m"),
                    q("job:slo_errors_per_request:ratio_rate1h{SVC}", "{{job}} 1h"),
                ],
            ),
            (
                "/v1 requests slower than the objective (latency SLI, objective 1%)",
                "percentunit",
                [
                    q("job:slo_slow_requests:ratio_rate5m{SVC}", "{{job}} 5m"),
                    q("job:slo_slow_requests:ratio_rate1h{SVC}", "{{job}} 1h"),
                ],
            ),
            ("Targets up", "short", [q("up{SVC}", "{{job}} {{instance}}")]),
        ],
    ),
    (
        "Models (batching, predictions, drift)",
        [
            (
                "Mean batch size",
                "short",
                [
                    q(
                        "sum by (model) (rate(model_batch_size_sum{SVC}[5m])) "
                        "/ sum by (model) (rate(model_batch_size_count{SVC}[5m]))",
                        "{{model}}",
                    )
                ],
            ),
            ("Queue depth", "short", [q("sum by (model) (model_queue_depth{SVC})", "{{model}}")]),
            (
                "Median prediction confidence",
                "percentunit",
                [
                    q(
                        "histogram_quantile(0.5, sum by (le, model) "
                        "(rate(model_prediction_confidence_bucket{SVC}[15m])))",
                        "{{model}}",
                    )
                ],
            ),
            (
                "Predicted classes/s",
                "short",
                [q("sum by (label) (rate(model_predictions_total{SVC}[5m]))", "{{label}}")],
            ),
            (
                "Rejected or timed-out inferences/s",
                "short",
                [
                    q(
                        "sum by (model, status) "
                        '(rate(model_requests_total{SVC, status!="ok"}[5m]))',
                        "{{model}} {{status}}",
                    )
                ],
            ),
            # pushed by the drift job: its job label is drift-<model>, not a service
            (
                "Drift share (last report)",
                "percentunit",
                [q("max by (model) (model_drift_share)", "{{model}}")],
            ),
        ],
    ),
    (
        "LLM chat (vLLM metric names)",
        [
            (
                "Time to first token",
                "s",
                [
                    q(
                        p95("vllm:time_to_first_token_seconds", ", model_name"),
                        "p95 {{model_name}}",
                    ),
                    q(
                        "histogram_quantile(0.5, sum by (le, model_name) "
                        "(rate(vllm:time_to_first_token_seconds_bucket{SVC}[5m])))",
                        "p50 {{model_name}}",
                    ),
                ],
            ),
            (
                "Inter-token latency",
                "s",
                [
                    q(
                        p95("vllm:inter_token_latency_seconds", ", model_name"),
                        "p95 {{model_name}}",
                    ),
                    q(
                        "histogram_quantile(0.5, sum by (le, model_name) "
                        "(rate(vllm:inter_token_latency_seconds_bucket{SVC}[5m])))",
                        "p50 {{model_name}}",
                    ),
                ],
            ),
            (
                "Tokens/s",
                "short",
                [
                    q(
                        "sum by (model_name) (rate(vllm:generation_tokens_total{SVC}[1m]))",
                        "generated {{model_name}}",
                    ),
                    q(
                        "sum by (model_name) (rate(vllm:prompt_tokens_total{SVC}[1m]))",
                        "prompt {{model_name}}",
                    ),
                ],
            ),
            (
                "Requests running and waiting",
                "short",
                [
                    q(
                        "sum by (model_name) (vllm:num_requests_running{SVC})",
                        "running {{model_name}}",
                    ),
                    q(
                        "sum by (model_name) (vllm:num_requests_waiting{SVC})",
                        "waiting {{model_name}}",
                    ),
                ],
            ),
            (
                "Finished requests/s by reason",
                "reqps",
                [
                    q(
                        "sum by (finished_reason) (rate(vllm:request_success_total{SVC}[5m]))",
                        "{{finished_reason}}",
                    )
                ],
            ),
            (
                "Prefix cache hit rate (tokens)",
                "percentunit",
                [
                    q(
                        "sum by (model_name) (rate(vllm:prefix_cache_hits_total{SVC}[5m])) "
                        "/ sum by (model_name) (rate(vllm:prefix_cache_queries_total{SVC}[5m]))",
                        "{{model_name}}",
                    )
                ],
            ),
        ],
    ),
    (
        "Semantic search",
        [
            (
                "Searches/s by mode",
                "reqps",
                [q("sum by (mode) (rate(search_requests_total{SVC}[1m]))", "{{mode}}")],
            ),
            (
                "p95 encode vs index time",
                "s",
                [
                    q(p95("search_encode_duration_seconds"), "encode"),
                    q(p95("search_duration_seconds", ", mode"), "index {{mode}}"),
                ],
            ),
            (
                "Zero-result rate",
                "percentunit",
                [
                    q(
                        "sum by (mode) (rate(search_zero_results_total{SVC}[15m])) "
                        "/ sum by (mode) (rate(search_requests_total{SVC}[15m]))",
                        "{{mode}}",
                    )
                ],
            ),
            (
                "Median top score",
                "short",
                [
                    q(
                        "histogram_quantile(0.5, sum by (le, mode) "
                        "(rate(search_top_score_bucket{SVC}[15m])))",
                        "{{mode}}",
                    )
                ],
            ),
        ],
    ),
    (
        "RAG chatbot",
        [
            (
                "p95 retrieval vs generation",
                "s",
                [
                    q(p95("rag_retrieval_duration_seconds"), "retrieval"),
                    q(p95("rag_generation_duration_seconds"), "generation"),
                    q(p95("rag_generation_first_token_seconds"), "first token"),
                ],
            ),
            (
                "No-answer rate and chunks used",
                "short",
                [
                    q(
                        'sum(rate(rag_answers_total{SVC, outcome="no_answer"}[15m])) '
                        "/ sum(rate(rag_answers_total{SVC}[15m]))",
                        "no-answer rate",
                    ),
                    q(
                        "sum(rate(rag_chunks_used_sum{SVC}[15m])) "
                        "/ sum(rate(rag_chunks_used_count{SVC}[15m]))",
                        "chunks per answer",
                    ),
                ],
            ),
            (
                "Median top retrieval score (cosine)",
                "short",
                [
                    q(
                        "histogram_quantile(0.5, "
                        "sum by (le) (rate(rag_top_retrieval_score_bucket{SVC}[15m])))",
                        "median",
                    )
                ],
            ),
            (
                "Citations/s by origin",
                "short",
                [q("sum by (origin) (rate(rag_citations_total{SVC}[5m]))", "{{origin}}")],
            ),
        ],
    ),
]
