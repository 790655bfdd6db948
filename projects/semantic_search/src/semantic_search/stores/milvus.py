"""Milvus through pymilvus' `MilvusClient`: the same code runs on Milvus Lite (a local `.db` file,
used in tests) and on a Milvus standalone or distributed deployment (an http URI).

BM25 is Milvus' own: a `BM25` function turns `text` into a sparse vector at insert time.
"""

import json
from collections.abc import Sequence

import numpy as np

from semantic_search.documents import Document, Filters, Hit

OUTPUT_FIELDS = ["id", "text", "title", "topic", "source", "date", "metadata"]
MAX_TEXT_CHARS = 65_535  # Milvus VARCHAR limit


def filter_expression(filters: Filters | None) -> str:
    """Filters as a Milvus boolean expression; strings are JSON-quoted (escapes included)."""
    if filters is None or filters.is_empty():
        return ""
    return " and ".join(
        filters.conditions(
            lambda field, values: f"{field} in {json.dumps(values, ensure_ascii=False)}"
        )
    )


class MilvusStore:
    backend = "milvus"

    def __init__(
        self, uri: str, dim: int, *, collection: str = "documents", token: str = ""
    ) -> None:
        from pymilvus import MilvusClient

        self.dim = dim
        self.collection = collection
        self.client = MilvusClient(uri=uri, token=token)
        if not self.client.has_collection(collection):
            self._create()
        self.client.load_collection(collection)

    def _create(self) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("text", DataType.VARCHAR, max_length=MAX_TEXT_CHARS, enable_analyzer=True)
        schema.add_field("title", DataType.VARCHAR, max_length=1024)
        schema.add_field("topic", DataType.VARCHAR, max_length=256)
        schema.add_field("source", DataType.VARCHAR, max_length=1024)
        schema.add_field("date", DataType.INT64)
        schema.add_field("metadata", DataType.VARCHAR, max_length=MAX_TEXT_CHARS)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index = self.client.prepare_index_params()
        index.add_index("vector", index_type="AUTOINDEX", metric_type="COSINE")
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self.client.create_collection(self.collection, schema=schema, index_params=index)

    def upsert(self, documents: Sequence[Document], vectors: np.ndarray) -> int:
        if not documents:
            return 0
        rows = [
            {
                "id": d.id,
                "text": d.text,
                "title": d.title,
                "topic": d.topic,
                "source": d.source,
                "date": d.date_key(),
                "metadata": json.dumps(d.metadata),
                "vector": np.asarray(v, np.float32).tolist(),
            }
            for d, v in zip(documents, vectors, strict=True)
        ]
        self.client.upsert(self.collection, rows)
        return len(rows)

    def delete(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        existing = len(self.get(ids))
        self.client.delete(self.collection, filter=_id_filter(ids))
        return existing

    def optimize(self) -> None:
        self.client.flush(self.collection)

    def count(self) -> int:
        result = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])

    def get(self, ids: Sequence[str]) -> list[Document]:
        if not ids:
            return []
        # Our own quoting: pymilvus' `ids=` builds the expression without escaping quotes.
        found = self.client.query(
            self.collection, filter=_id_filter(ids), output_fields=OUTPUT_FIELDS
        )
        rows = {r["id"]: r for r in found}
        return [_document(rows[i]) for i in ids if i in rows]

    def dense(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters | None = None,
        *,
        with_vectors: bool = False,
    ) -> list[Hit]:
        fields = OUTPUT_FIELDS + (["vector"] if with_vectors else [])
        result = self.client.search(
            self.collection,
            data=[np.asarray(vector, np.float32).tolist()],
            anns_field="vector",
            limit=k,
            filter=filter_expression(filters),
            output_fields=fields,
            search_params={"metric_type": "COSINE"},
        )[0]
        return [
            Hit(
                _document(r["entity"]),
                float(r["distance"]),
                np.asarray(r["entity"]["vector"], np.float32) if with_vectors else None,
            )
            for r in result
        ]

    def text(
        self, query: str, k: int, filters: Filters | None = None, *, with_vectors: bool = False
    ) -> list[Hit]:
        result = self.client.search(
            self.collection,
            data=[query],
            anns_field="sparse",
            limit=k,
            filter=filter_expression(filters),
            output_fields=OUTPUT_FIELDS + (["vector"] if with_vectors else []),
            search_params={"metric_type": "BM25"},
        )[0]
        # Milvus Lite reports BM25 as a negated distance, Milvus standalone as a positive score.
        return [
            Hit(
                _document(r["entity"]),
                abs(float(r["distance"])),
                np.asarray(r["entity"]["vector"], np.float32) if with_vectors else None,
            )
            for r in result
        ]

    def topics(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        iterator = self.client.query_iterator(
            self.collection, batch_size=1000, output_fields=["topic"]
        )
        while batch := iterator.next():
            for row in batch:
                counts[row["topic"]] = counts.get(row["topic"], 0) + 1
        iterator.close()
        return counts


def _id_filter(ids: Sequence[str]) -> str:
    # JSON quoting, non-ASCII kept: Milvus's expression parser reads \" and \\ but not \uXXXX.
    return f"id in {json.dumps(list(ids), ensure_ascii=False)}"


def _document(row: dict) -> Document:
    return Document(
        id=row["id"],
        text=row["text"],
        title=row.get("title") or "",
        topic=row.get("topic") or "",
        source=row.get("source") or "",
        date=Document.date_from_key(row.get("date")),
        metadata=json.loads(row.get("metadata") or "{}"),
    )
