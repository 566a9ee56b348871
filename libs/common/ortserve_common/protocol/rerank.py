"""/v1/rerank wire models, in the Cohere/Jina shape that most rerank clients send."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ortserve_common.protocol.common import OpenAIModel


class RerankDocument(OpenAIModel):
    text: str


class RerankRequest(OpenAIModel):
    model: str = Field(min_length=1)
    query: str
    documents: list[str | RerankDocument]
    top_n: int | None = None
    top_k: int | None = Field(None, description="Jina's and some clients' name for top_n.")
    return_documents: bool = True
    # Extension, as on /v1/embeddings: cut over-long pairs (the document's tail) instead of refusing them.
    truncate: bool | None = None

    def document_texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]

    def requested_top_n(self) -> tuple[int | None, str]:
        """The limit and the name it came under, so a refusal names the field the client actually sent."""
        if self.top_n is not None:
            return self.top_n, "top_n"
        return self.top_k, "top_k"


class RerankResultDocument(BaseModel):
    text: str


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankResultDocument | None = None


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult]
    usage: RerankUsage
