# syntax=docker/dockerfile:1
# Multi-stage build: a static syncworker binary on a distroless base, running as non-root.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/syncworker ./cmd/syncworker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/syncworker /usr/local/bin/syncworker
COPY examples/ /etc/syncworker/examples/
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/syncworker"]
CMD ["--help"]
