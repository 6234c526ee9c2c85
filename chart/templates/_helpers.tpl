{{/* The release's base name: the release name, or "<release>-mcp-operator". */}}
{{- define "mcp-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mcp-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mcp-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mcp-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "mcp-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mcp-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mcp-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "mcp-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The webhook Service, named in the webhook configurations, the CRDs and the certificate. */}}
{{- define "mcp-operator.webhookService" -}}
{{- printf "%s-webhook" (include "mcp-operator.fullname" .) -}}
{{- end -}}

{{/* The Certificate whose CA cert-manager's injector copies into every caBundle. */}}
{{- define "mcp-operator.servingCertificate" -}}
{{- printf "%s-serving-cert" (include "mcp-operator.fullname" .) -}}
{{- end -}}

{{/* The Secret holding tls.crt/tls.key: issued by cert-manager, or kept by the operator itself. */}}
{{- define "mcp-operator.certSecret" -}}
{{- if .Values.certManager.enabled -}}
{{- printf "%s-webhook-tls" (include "mcp-operator.fullname" .) -}}
{{- else -}}
{{- printf "%s-webhook-certs" (include "mcp-operator.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "mcp-operator.injectCaFrom" -}}
{{- printf "%s/%s" .Release.Namespace (include "mcp-operator.servingCertificate" .) -}}
{{- end -}}

{{/* Where the serving pair is read: the mounted Secret, or an emptyDir the operator writes. */}}
{{- define "mcp-operator.certDir" -}}
/tmp/k8s-webhook-server/serving-certs
{{- end -}}

{{/* The lease `run --leader-elect` holds: one per release, so two releases in one namespace
(e.g. namespace-scoped, for different teams) do not take turns reconciling. */}}
{{- define "mcp-operator.leaseName" -}}
{{- printf "%s-leader" (include "mcp-operator.fullname" .) -}}
{{- end -}}

{{/* Fails the render on combinations that cannot work, naming the values. */}}
{{- define "mcp-operator.validate" -}}
{{- if and .Values.watchNamespaces .Values.storageMigration -}}
{{- fail "storageMigration=true needs cluster scope (it rewrites objects of every namespace): set storageMigration=false with watchNamespaces, or leave watchNamespaces empty" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicas > 1 needs leaderElection.enabled=true: two replicas reconciling at once fight over every object" -}}
{{- end -}}
{{- if and .Values.certManager.existingIssuer.name (not .Values.certManager.enabled) -}}
{{- fail "certManager.existingIssuer.name is set but certManager.enabled is false" -}}
{{- end -}}
{{- end -}}
