{{- /* Named templates every object template of the config can use (global.functionTemplates). */ -}}
{{- define "app-label" }}app: density-{{ .Replica }}{{ end -}}
