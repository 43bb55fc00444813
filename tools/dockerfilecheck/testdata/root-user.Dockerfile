FROM golang:1.26 AS build
RUN CGO_ENABLED=0 go build -o /out/app .
FROM scratch
COPY no-such-dir/ /etc/app/
COPY --from=builder /out/app /app
USER root
