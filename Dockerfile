# The vnode image: the daemon (`vnode run`), the webhook (`vnode webhook`) and `vnode gc`.
#   docker build -t vnode:0.1.0 .
# Two stages: wheels are built with the compilers of the full image, the runtime is slim and
# runs as an unprivileged user (the chart sets runAsNonRoot and a read-only root filesystem).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY vnode ./vnode
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels vnode && rm -rf /wheels \
 && useradd --system --uid 65532 --no-create-home --shell /usr/sbin/nologin vnode
USER 65532:65532
# The chart runs `vnode run`, `vnode webhook` or `vnode gc` as the container's command.
ENTRYPOINT ["vnode"]
CMD ["--help"]
