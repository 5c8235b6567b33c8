# Parley: one static Go binary on distroless.
#
#   docker build -t parley .
#   docker run --rm -p 8080:8080 -e REDIS_URL=redis://host:6379/0 parley
#
# Without REDIS_URL the binary runs its embedded, in-memory Redis (nothing kept).
# static/ and the committed *_templ.go files are compiled in via go:embed, so the
# build context must include them (see .dockerignore).

FROM golang:1.26-bookworm AS build
WORKDIR /src

# Module download in its own layer: only invalidated when go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /parley .

# static-debian12 ships CA certificates (TLS to the LLM provider and to rediss://
# Redis) and tzdata, and no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /parley /parley
# PORT, not PARLEY_ADDR: a platform that routes to a port of its choosing
# (Cloud Run, Render, Heroku) sets PORT, and Parley listens on :PORT.
ENV PORT=8080
# Metrics on every interface of the container, for a platform's scraper;
# publish only 8080.
ENV METRICS_ADDR=:9091
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/parley"]
