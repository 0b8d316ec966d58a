-- CreateIndex
CREATE INDEX "quotes_created_at_idx" ON "quotes"("created_at");

-- CreateIndex
CREATE UNIQUE INDEX "quotes_author_text_key" ON "quotes"("author", "text");

